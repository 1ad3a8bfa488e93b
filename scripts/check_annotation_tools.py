#!/usr/bin/env python3
"""The annotation round trip with the real tools (scripts/ci/annotation.sh drives it).

Subcommands, in the order the CI script runs them:

- `prepare`: a copy of the sample dataset (one queued row gets a `rationale` and a
  `meta`, so replacing a rationale and keeping `meta` are exercised; `img/` is a link
  to the sample's images) and the `--issues` / `--recall` files `vigil queue` reads.
- `labelstudio`: against a running Label Studio (pinned PyPI release) over its REST
  API: Vigil's labeling config and tasks are checked by label-studio-sdk's
  LabelInterface (config schema, predictions against the config), then the server
  creates a project from the config and imports the tasks (its own validation of both);
  annotations as the editor makes them (the pre-annotation accepted, some choices
  changed, a rationale typed; a skipped task; a task submitted then skipped) are
  posted; the project is exported as JSON (`/api/projects/{id}/export?exportType=JSON`).
- `argilla`: no server (Argilla's needs Elasticsearch): the pinned `argilla` client,
  offline, reads Vigil's settings with `rg.Settings.from_json`, turns each record into
  `rg.Record.from_dict(...)` and into the exact payload `dataset.records.log()` would
  send (`_ingest_records`: suggestions resolved against the questions, the image read
  and inlined); the values the server would check (suggestion values among the
  question's options, metadata against its properties, required fields) are checked
  against the parsed settings. Then the reviewed dataset as the server would hand it
  back (record models with user responses and the record status the server computes)
  goes through `Record.from_model` and `JsonIO.to_json` — the code of
  `dataset.records.to_json(path)`.
- `verify`: the file `vigil datasets apply-labels` wrote: every unreviewed line byte for
  byte as in the input, reviewed rows with the expected labels, rationale and
  `meta.provenance` entry.

Each of `labelstudio` and `argilla` writes an expectations file for `verify`.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

LABELS = ["hate", "harassment", "violence", "self_harm", "spam"]
# Rows (0-based lines of the sample) named by the sources; with --budget 5 the queue is
# rows 0 (issues), 2 (recall; issues names it too), 4 (issues), 6 and 7 (recall): row 8
# gets no turn.
ISSUE_ROWS = [0, 2, 4]
RECALL_ROWS = [2, 6, 7, 8]
SEED_ROW = 9
RATIONALE_ROW = 2
OLD_RATIONALE = "reads like a threat"


def fail(msg):
    sys.exit(f"check_annotation_tools: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def by_id(path):
    return {r["id"]: r for r in read_rows(path)}


def as_bit(v):
    return None if v is None else int(bool(v))


def yes_no_bit(answer):
    return {"yes": 1, "no": 0}[answer]


# ---------------------------------------------------------------------------- prepare


def cmd_prepare(a):
    os.makedirs(a.work, exist_ok=True)
    src_dir = os.path.dirname(os.path.abspath(a.sample))
    with open(a.sample, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    rows = [json.loads(line) for line in lines]
    # One queued row carries a rationale and a meta (key order kept, so the line stays
    # as a person would write it; the other lines are the sample's bytes).
    r = rows[RATIONALE_ROW]
    r["rationale"] = OLD_RATIONALE
    r["meta"] = {"batch": 3}
    lines[RATIONALE_ROW] = json.dumps(r, separators=(",", ":")) + "\n"
    with open(os.path.join(a.work, "train.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(lines))
    link = os.path.join(a.work, "img")
    if not os.path.lexists(link):
        os.symlink(os.path.join(src_dir, "img"), link)
    ids = [row["id"] for row in rows]
    with open(os.path.join(a.work, "issues.jsonl"), "w") as f:
        for k, i in enumerate(ISSUE_ROWS):
            f.write(json.dumps({"id": ids[i], "rank": k + 1, "issues": [
                {"kind": "label_error", "label": "hate", "given": as_bit(rows[i]["labels"]["hate"]),
                 "suggested": 1, "reason": f"p(hate)=0.9{k}"}]}) + "\n")
    with open(os.path.join(a.work, "recall.jsonl"), "w") as f:
        for k, i in enumerate(RECALL_ROWS):
            f.write(json.dumps({"id": ids[i], "similarity": round(0.95 - 0.05 * k, 2),
                                "seed": ids[SEED_ROW]}) + "\n")
    print(f"prepare: {a.work}/train.jsonl ({len(rows)} rows), issues.jsonl, recall.jsonl")


def queued_ids(rows):
    return [rows[i]["id"] for i in (0, 2, 4, 6, 7)]


def expectation(row, answers, rationale, by, at, conflicts=()):
    """What apply-labels must write for `row` given the applied `answers` {label: 0|1}."""
    old = {k: as_bit(v) for k, v in row["labels"].items()}
    new = dict(old)
    changes, confirmed = {}, []
    for label, v in answers.items():
        new[label] = v
        if old.get(label) == v:
            confirmed.append(label)
        else:
            changes[label] = {"old": old.get(label), "new": v}
    exp = {"labels": new, "changes": changes, "confirmed": sorted(confirmed), "by": by, "at": at,
           "rationale": rationale if rationale is not None else row.get("rationale"),
           "conflicts": sorted(conflicts)}
    if rationale is not None and row.get("rationale") not in (None, rationale):
        exp["previous_rationale"] = row["rationale"]
    return exp


# ------------------------------------------------------------------------ Label Studio


class LabelStudio:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None, expect=(200, 201), raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, method=method, headers=self.headers, data=data)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, payload = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        if status not in expect:
            fail(f"Label Studio {method} {path}: HTTP {status}: {payload[:3000].decode(errors='replace')}")
        if raw:
            return status, payload
        return status, (json.loads(payload) if payload else None)


def region_id():
    return uuid.uuid4().hex[:10]


def choice(label, answer):
    # As the editor writes a region: an id, origin "manual".
    return {"id": region_id(), "from_name": label, "to_name": "text", "type": "choices",
            "origin": "manual", "value": {"choices": [answer]}}


def textarea(text):
    return {"id": region_id(), "from_name": "rationale", "to_name": "text", "type": "textarea",
            "origin": "manual", "value": {"text": [text]}}


def edited(prediction, answers, rationale):
    """The result of an annotation that started from the pre-annotation: its choices,
    some answers changed or added, a rationale typed (replacing the pre-filled one)."""
    out, seen = [], set()
    for r in prediction["result"]:
        if r["type"] == "choices":
            ans = answers.get(r["from_name"], r["value"]["choices"][0])
            out.append(choice(r["from_name"], ans))
            seen.add(r["from_name"])
    for label, ans in answers.items():
        if label not in seen:
            out.append(choice(label, ans))
    if rationale is not None:
        out.append(textarea(rationale))
    return out


def cmd_labelstudio(a):
    from label_studio_sdk.label_interface import LabelInterface

    t0 = time.monotonic()
    with open(a.config, encoding="utf-8") as f:
        xml = f.read()
    with open(a.tasks, encoding="utf-8") as f:
        tasks = json.load(f)
    rows = read_rows(a.data)
    row_of = {r["id"]: r for r in rows}
    check(len(tasks) == 5, f"{a.tasks}: {len(tasks)} tasks, expected 5 (--budget 5)")
    check([t["data"]["vigil_id"] for t in tasks] == queued_ids(rows),
          f"{a.tasks}: queue order {[t['data']['vigil_id'] for t in tasks]}")

    # label-studio-sdk's own validation: the config's schema, unique names, toName
    # targets; each prediction's regions against the config (from_name, to_name, type,
    # an allowed choice).
    li = LabelInterface(xml)
    li.validate()
    for t in tasks:
        for p in t.get("predictions", []):
            errs = li.validate_prediction(p, return_errors=True)
            check(not errs, f"task {t['data']['vigil_id']}: label-studio-sdk rejects its prediction: {errs}")
        for obj in li.objects:
            if obj.value_is_variable:
                check(obj.value_name in t["data"],
                      f"task {t['data']['vigil_id']}: no data.{obj.value_name} for <{obj.tag} name={obj.name}>")
    bad = {"result": [{"from_name": "hate", "to_name": "text", "type": "choices", "value": {"choices": ["maybe"]}}]}
    check(li.validate_prediction(bad, return_errors=True), "label-studio-sdk accepted a choice the config lacks")
    print(f"labelstudio: label-studio-sdk LabelInterface accepts the config and the {len(tasks)} tasks' predictions")

    ls = LabelStudio(a.url, a.token)
    _, me = ls.call("GET", "/api/current-user/whoami")
    # The server validates a config on project creation: a broken one is refused...
    _, _ = ls.call("POST", "/api/projects", {"title": "broken", "label_config": xml.replace(
        'toName="text"', 'toName="nosuch"', 1)}, expect=(400,))
    # ... and Vigil's is accepted.
    _, project = ls.call("POST", "/api/projects", {"title": "vigil review", "label_config": xml})
    pid = project["id"]
    _, imp = ls.call("POST", f"/api/projects/{pid}/import", tasks)
    check(imp["task_count"] == len(tasks) and imp["prediction_count"] == len(tasks),
          f"import: {imp}")
    _, listed = ls.call("GET", f"/api/tasks?project={pid}&page_size=100")
    stored = {t["data"]["vigil_id"]: t for t in listed["tasks"]}
    check(set(stored) == {t["data"]["vigil_id"] for t in tasks}, f"stored tasks: {sorted(stored)}")
    for t in tasks:
        s = stored[t["data"]["vigil_id"]]
        check(s["data"] == t["data"], f"task {t['data']['vigil_id']}: stored data differs: {s['data']}")
        check(s["meta"] == t["meta"], f"task {t['data']['vigil_id']}: stored meta differs: {s['meta']}")
        check(s["total_predictions"] == 1, f"task {t['data']['vigil_id']}: {s['total_predictions']} predictions")
    print(f"labelstudio: server {a.url} (user {me['email']}, id {me['id']}) created project {pid} "
          f"from the config (a broken one was refused) and imported {imp['task_count']} tasks with "
          f"{imp['prediction_count']} predictions, data and meta stored as sent")

    task_of = {vid: stored[vid] for vid in stored}
    pred_of = {t["data"]["vigil_id"]: t["predictions"][0] for t in tasks}
    r0, r2, r4 = (rows[0]["id"], rows[2]["id"], rows[4]["id"])

    def annotate(vid, result, cancelled=False):
        body = {"result": result, "was_cancelled": cancelled, "ground_truth": False, "lead_time": 4.2}
        if result:
            errs = li.validate_prediction({"result": result}, return_errors=True)
            check(not errs and li.validate_annotation({"result": result}),
                  f"label-studio-sdk rejects the annotation of {vid}: {errs}")
        _, ann = ls.call("POST", f"/api/tasks/{task_of[vid]['id']}/annotations", body)
        return ann

    # Row 0: the pre-annotation accepted, hate changed to yes, spam (unknown) answered no.
    annotate(r0, edited(pred_of[r0], {"hate": "yes", "spam": "no"}, "a slur aimed at a group"))
    # Row 2 (has a rationale): violence changed to no, the rationale replaced; later the
    # same reviewer skips the task (a cancelled annotation, ignored).
    annotate(r2, edited(pred_of[r2], {"violence": "no"}, "no threat in the text"))
    time.sleep(1.1)
    annotate(r2, [], cancelled=True)
    # Row 4: skipped only: no review, the row stays byte for byte.
    annotate(r4, [], cancelled=True)

    _, body = ls.call("GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true", raw=True)
    with open(a.export, "wb") as f:
        f.write(body)
    export = json.loads(body)
    check(len(export) == len(tasks), f"export: {len(export)} tasks")
    anns = {t["data"]["vigil_id"]: t["annotations"] for t in export}
    check(len(anns[r2]) == 2 and len(anns[r4]) == 1, f"export annotations: {anns}")
    kept = [x for x in anns[r2] if not x["was_cancelled"]]

    def by_of(ann):
        c = ann["completed_by"]
        return c["email"] if isinstance(c, dict) else f"label-studio user {c}"

    exp = {
        r0: expectation(row_of[r0], {"hate": 1, "spam": 0, **{
            k: yes_no_bit(v["value"]["choices"][0]) for k, v in
            ((r["from_name"], r) for r in pred_of[r0]["result"] if r["type"] == "choices")
            if k not in ("hate", "spam")}}, "a slur aimed at a group", by_of(anns[r0][0]),
            anns[r0][0]["updated_at"]),
        r2: expectation(row_of[r2], {"violence": 0, **{
            k: yes_no_bit(v["value"]["choices"][0]) for k, v in
            ((r["from_name"], r) for r in pred_of[r2]["result"] if r["type"] == "choices")
            if k != "violence"}}, "no threat in the text", by_of(kept[0]), kept[0]["updated_at"]),
    }
    check(exp[r0]["by"] in (f"label-studio user {me['id']}", me["email"]),
          f"completed_by: {anns[r0][0]['completed_by']}, the user is {me['id']}")
    with open(a.expect, "w") as f:
        json.dump({"format": "labelstudio", "reviews": 2, "rows": exp}, f, indent=1)
    print(f"labelstudio: 3 tasks annotated (1 submitted, 1 submitted then skipped, 1 skipped); "
          f"export {a.export} ({len(body)} bytes) in {time.monotonic() - t0:.1f} s")


# ----------------------------------------------------------------------------- Argilla


def offline_client():
    """An `rg.Argilla` with no server: the constructor's one call (GET /api/v1/me) is
    answered in process; any other request fails, so nothing here needs a server."""
    import httpx
    import argilla as rg

    me = {"id": str(uuid.uuid4()), "username": "vigil-ci", "role": "owner", "first_name": "vigil-ci",
          "inserted_at": "2025-01-01T00:00:00", "updated_at": "2025-01-01T00:00:00"}

    def handler(req):
        if req.method == "GET" and req.url.path == "/api/v1/me":
            return httpx.Response(200, json=me)
        return httpx.Response(503, json={"detail": f"offline check: no {req.method} {req.url.path}"})

    client = rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline",
                        mounts={"all://": httpx.MockTransport(handler)})
    return client, uuid.UUID(me["id"])


def cmd_argilla(a):
    t0 = time.monotonic()
    import argilla as rg
    from argilla._models import UserResponseModel
    from argilla.records._io import JsonIO

    records_path, settings_path = os.path.abspath(a.records), os.path.abspath(a.settings)
    export_path, expect_path = os.path.abspath(a.export), os.path.abspath(a.expect)
    data_path = os.path.abspath(a.data)
    rows = read_rows(data_path)
    row_of = {r["id"]: r for r in rows}
    client, me = offline_client()

    settings = rg.Settings.from_json(settings_path)
    settings.validate()
    fields = {f.name: f for f in settings.fields}
    questions = {q.name: q for q in settings.questions}
    meta_props = {m.name: m for m in settings.metadata}
    check(isinstance(fields.get("text"), rg.TextField) and isinstance(fields.get("reasons"), rg.TextField),
          f"fields: {fields}")
    check(isinstance(fields.get("image"), rg.ImageField), f"the image field: {fields.get('image')}")
    for label in LABELS:
        q = questions.get(label)
        check(isinstance(q, rg.LabelQuestion) and q.labels == ["yes", "no"] and not q.required,
              f"question {label}: {q}")
    check(isinstance(questions.get("rationale"), rg.TextQuestion), f"question rationale: {questions}")
    check(isinstance(meta_props.get("priority"), rg.IntegerMetadataProperty)
          and isinstance(meta_props.get("sources"), rg.TermsMetadataProperty), f"metadata: {meta_props}")
    check(settings.distribution.min_submitted == 1, f"distribution: {settings.distribution}")
    print(f"argilla: rg.Settings.from_json reads {os.path.basename(settings_path)}: "
          f"fields {list(fields)}, questions {list(questions)}, metadata {list(meta_props)}, "
          f"{settings.distribution}")

    ds = rg.Dataset(name="vigil-review", settings=settings, client=client)
    # The server gives each question an id; suggestions of records read back from it
    # name their question by id.
    for q in ds.settings.questions:
        q._model.id = uuid.uuid4()
    with open(records_path, encoding="utf-8") as f:
        raw = json.load(f)
    check([r["id"] for r in raw] == queued_ids(rows), f"records: {[r['id'] for r in raw]}")
    # Image fields are paths relative to the dataset's directory; the client reads them
    # relative to the working directory (and sends them inline as data URIs).
    os.chdir(os.path.dirname(data_path))
    records = [rg.Record.from_dict(r) for r in raw]
    models = ds.records._ingest_records(records=records, user_id=me)
    for r, m in zip(raw, models):
        rid = r["id"]
        check(m.external_id == rid, f"record {rid}: external_id {m.external_id}")
        for name, value in (m.fields or {}).items():
            check(name in fields, f"record {rid}: field {name} is not in the settings")
            if isinstance(fields[name], rg.ImageField):
                check(value.startswith("data:image/png;base64,"), f"record {rid}: image {value[:40]}")
            else:
                check(isinstance(value, str), f"record {rid}: field {name} = {value!r}")
        for name, f in fields.items():
            check(not f.required or (m.fields or {}).get(name), f"record {rid}: required field {name} missing")
        for s in m.suggestions:
            q = questions[s.question_name]
            check(s.question_id == ds.settings.questions[s.question_name].id, f"record {rid}: {s}")
            if isinstance(q, rg.LabelQuestion):
                check(s.value in q.labels, f"record {rid}: suggestion {s.question_name}={s.value!r}")
            else:
                check(isinstance(s.value, str), f"record {rid}: suggestion {s.question_name}={s.value!r}")
        for md in m.metadata:
            prop = meta_props.get(md.name)
            check(prop is not None or settings.allow_extra_metadata, f"record {rid}: metadata {md.name}")
            if isinstance(prop, rg.IntegerMetadataProperty):
                check(isinstance(md.value, int) and prop.min <= md.value <= prop.max,
                      f"record {rid}: {md.name}={md.value!r} not in [{prop.min}, {prop.max}]")
            if isinstance(prop, rg.TermsMetadataProperty):
                vals = md.value if isinstance(md.value, list) else [md.value]
                check(all(v in prop.options for v in vals), f"record {rid}: {md.name}={md.value!r}")
    bad = dict(raw[0], suggestions={"nosuch": {"value": "yes", "score": None, "agent": "x"}})
    try:
        ds.records._ingest_records(records=[rg.Record.from_dict(bad)], user_id=me)
        fail("argilla accepted a suggestion for a question the settings lack")
    except Exception as e:  # RecordsIngestionError from RecordSuggestionsError
        check("nosuch" in repr(e) or "nosuch" in repr(e.__cause__), f"unexpected error: {e!r}")
    print(f"argilla: {len(models)} records -> rg.Record.from_dict -> the records.log() payload "
          f"(suggestions resolved against the questions, images inlined); values checked against "
          f"the settings; a suggestion for an unknown question is refused")

    # The review, as the server would return it: responses of two annotators; the record
    # status the server computes (completed once min_submitted responses are submitted).
    ann_a, ann_b = uuid.UUID(int=0xA), uuid.UUID(int=0xB)
    r0, r2, r4 = rows[0]["id"], rows[2]["id"], rows[4]["id"]
    answers = {
        r0: [(ann_a, "submitted", {"hate": "yes", "violence": "yes", "rationale": "a slur aimed at a group"}),
             (ann_b, "submitted", {"hate": "yes", "violence": "no", "spam": "no"})],
        r2: [(ann_a, "submitted", {"self_harm": "no", "rationale": "no self-harm in the text"})],
        r4: [(ann_b, "draft", {"hate": "yes"})],
    }
    served = []
    for m in models:
        m = m.model_copy(deep=True)
        m.id = uuid.uuid4()
        given = answers.get(m.external_id, [])
        m.responses = [UserResponseModel(values={q: {"value": v} for q, v in vals.items()},
                                         status=st, user_id=u) for u, st, vals in given]
        m.status = "completed" if sum(st == "submitted" for _, st, _ in given) >= \
            settings.distribution.min_submitted else "pending"
        served.append(m)
    reviewed = [rg.Record.from_model(m, dataset=ds) for m in served]
    if os.path.exists(export_path):
        os.remove(export_path)
    JsonIO.to_json(reviewed, export_path)
    with open(export_path) as f:
        export = json.load(f)
    check([r["id"] for r in export] == queued_ids(rows), f"export ids: {[r['id'] for r in export]}")
    shape = {k for r in export for k in r}
    print(f"argilla: reviewed records -> Record.from_model -> JsonIO.to_json "
          f"(dataset.records.to_json): {export_path}; keys {sorted(shape)}; responses as "
          f"{json.dumps(export[0]['responses'])[:120]}...")

    exp = {
        # Both annotators said hate=yes; only B answered spam; they disagree on violence.
        r0: expectation(row_of[r0], {"hate": 1, "spam": 0}, "a slur aimed at a group",
                        f"{ann_a},{ann_b}", None, conflicts=["violence"]),
        r2: expectation(row_of[r2], {"self_harm": 0}, "no self-harm in the text", str(ann_a), None),
    }
    with open(expect_path, "w") as f:
        json.dump({"format": "argilla", "reviews": 2, "rows": exp}, f, indent=1)
    print(f"argilla: done in {time.monotonic() - t0:.1f} s")


# ------------------------------------------------------------------------------ verify


def cmd_verify(a):
    with open(a.expect) as f:
        spec = json.load(f)
    exp = spec["rows"]
    with open(a.data, "rb") as f:
        old = f.read().split(b"\n")
    with open(a.new, "rb") as f:
        new = f.read().split(b"\n")
    check(len(old) == len(new), f"{a.new}: {len(new)} lines, the input has {len(old)}")
    seen = set()
    for n, (o, w) in enumerate(zip(old, new), 1):
        if not o.strip():
            check(o == w, f"{a.new}:{n}: blank line changed")
            continue
        orow = json.loads(o)
        rid = orow["id"]
        if rid not in exp:
            check(o == w, f"{a.new}:{n}: row {rid} was not reviewed but its line changed")
            continue
        seen.add(rid)
        e = exp[rid]
        nrow = json.loads(w)
        labels = {k: as_bit(v) if v is not None else None for k, v in nrow["labels"].items()}
        check(labels == e["labels"], f"row {rid}: labels {labels}, expected {e['labels']}")
        check(nrow.get("rationale") == e["rationale"], f"row {rid}: rationale {nrow.get('rationale')!r}")
        for k in orow:
            if k not in ("labels", "rationale", "meta"):
                check(nrow.get(k) == orow[k], f"row {rid}: field {k} changed")
        meta = nrow.get("meta") or {}
        for k, v in (orow.get("meta") or {}).items():
            check(meta.get(k) == v, f"row {rid}: meta.{k} changed")
        prov = meta.get("provenance")
        check(isinstance(prov, list) and len(prov) == 1, f"row {rid}: meta.provenance {prov}")
        p = prov[0]
        check(p.get("by") == e["by"], f"row {rid}: provenance.by {p.get('by')!r}, expected {e['by']!r}")
        if e["at"] is not None:
            check(p.get("at") == e["at"], f"row {rid}: provenance.at {p.get('at')!r}, expected {e['at']!r}")
        else:
            check(isinstance(p.get("at"), str) and p["at"].endswith("Z"), f"row {rid}: provenance.at {p.get('at')!r}")
        check(p.get("source") == a.reviews, f"row {rid}: provenance.source {p.get('source')!r}")
        check(p.get("changes") == e["changes"], f"row {rid}: changes {p.get('changes')}, expected {e['changes']}")
        check(sorted(p.get("confirmed", [])) == e["confirmed"],
              f"row {rid}: confirmed {p.get('confirmed')}, expected {e['confirmed']}")
        check(p.get("previous_rationale") == e.get("previous_rationale"),
              f"row {rid}: previous_rationale {p.get('previous_rationale')!r}")
        check(sorted(p.get("conflicts", [])) == e["conflicts"], f"row {rid}: conflicts {p.get('conflicts')}")
    check(seen == set(exp), f"rows never found: {sorted(set(exp) - seen)}")
    print(f"verify: {a.new}: {len(exp)} reviewed rows as expected ({spec['format']}); "
          f"the other {sum(1 for line in old if line.strip()) - len(exp)} lines byte-identical")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--sample", required=True)
    s.add_argument("--work", required=True)
    s = sub.add_parser("labelstudio")
    s.add_argument("--url", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--tasks", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--export", required=True)
    s.add_argument("--expect", required=True)
    s = sub.add_parser("argilla")
    s.add_argument("--data", required=True)
    s.add_argument("--records", required=True)
    s.add_argument("--settings", required=True)
    s.add_argument("--export", required=True)
    s.add_argument("--expect", required=True)
    s = sub.add_parser("verify")
    s.add_argument("--data", required=True)
    s.add_argument("--new", required=True)
    s.add_argument("--reviews", required=True, help="the --reviews path as given to apply-labels")
    s.add_argument("--expect", required=True)
    a = p.parse_args()
    {"prepare": cmd_prepare, "labelstudio": cmd_labelstudio, "argilla": cmd_argilla,
     "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    main()
