#!/usr/bin/env python3
"""Validate the Kubernetes manifests `vigil render k8s-*` printed, offline.

    check_k8s.py FILE.yaml... [--min 1.32] [--expect-fail]

- Core objects (ConfigMap, CronJob, ...) against the strict OpenAPI schemas that
  `kubernetes-validate` ships, for every minor version from --min up to the newest the
  installed package knows (`kubernetes-validate --strict`: unknown fields are errors).
- TrainJob and TrainingRuntime (trainer.kubeflow.org/v1alpha1) loaded into the models of
  `kubeflow-trainer-api`, PyTorchJob (kubeflow.org/v1) into those of `kubeflow-training`;
  the models ignore unknown keys, so each object is also serialized back and must equal
  the input (a misspelt field is dropped and shows up as a difference). Their pod
  templates (and the runtime's Job template) are checked against the core schemas as
  above, as a `v1 PodTemplate` / `batch/v1 CronJob`.

Exit 0 when everything passes; 1 with one line per failure otherwise. With
--expect-fail the exit status is inverted (CI proves the checker catches a known-bad
manifest).
"""

import argparse
import sys

import kubernetes_validate
import yaml


def versions(minimum):
    def key(v):
        return tuple(int(x) for x in v.split(".")[:2])

    seen = []
    for v in kubernetes_validate.utils.all_versions():
        mm = ".".join(v.split(".")[:2])
        if key(mm) >= key(minimum) and mm not in seen:
            seen.append(mm)
    return seen


def core(doc, where, vers, errors):
    for v in vers:
        try:
            kubernetes_validate.validate(doc, v + ".0", strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{where} ({doc['kind']}) against {v}: {path}: {e.message}")
        except Exception as e:  # schema not found and the like
            errors.append(f"{where} ({doc['kind']}) against {v}: {e}")


def pod_template(template, where, vers, errors):
    wrapped = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "vigil-check"},
        "template": template,
    }
    core(wrapped, where + " pod template", vers, errors)


def job_template(job_template_spec, where, vers, errors):
    wrapped = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "vigil-check"},
        "spec": {"schedule": "@daily", "jobTemplate": job_template_spec},
    }
    core(wrapped, where + " job template", vers, errors)


def drop_none(v):
    if isinstance(v, dict):
        return {k: drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_none(x) for x in v]
    return v


def diff(a, b, path=""):
    """The first difference between the input `a` and the round trip `b`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if k not in b:
                return f"{path}.{k}: not a field of the model"
            d = diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if str(a) != str(b):
        return f"{path}: {a!r} became {b!r}"
    return None


def trainer(doc, where, vers, errors):
    from kubeflow_trainer_api import models

    cls = {
        "TrainJob": models.TrainerV1alpha1TrainJob,
        "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
    }[doc["kind"]]
    try:
        obj = cls.from_dict(doc)
        back = drop_none(obj.to_dict())
    except Exception as e:
        errors.append(f"{where} ({doc['kind']}): {e}")
        return
    d = diff(doc, back)
    if d:
        errors.append(f"{where} ({doc['kind']}): {d}")
    if doc["kind"] == "TrainingRuntime":
        for rj in doc["spec"]["template"]["spec"]["replicatedJobs"]:
            job_template(rj["template"], f"{where} replicatedJob {rj['name']}", vers, errors)
            pod_template(rj["template"]["spec"]["template"], f"{where} replicatedJob {rj['name']}", vers, errors)


def pytorchjob(doc, where, vers, errors):
    from kubeflow.training import ApiClient

    client = ApiClient()

    class Resp:
        data = None

    import json

    Resp.data = json.dumps(doc)
    try:
        obj = client.deserialize(Resp, "KubeflowOrgV1PyTorchJob")
        back = drop_none(client.sanitize_for_serialization(obj))
    except Exception as e:
        errors.append(f"{where} (PyTorchJob): {e}")
        return
    d = diff(doc, back)
    if d:
        errors.append(f"{where} (PyTorchJob): {d}")
    for role, spec in doc["spec"]["pytorchReplicaSpecs"].items():
        pod_template(spec["template"], f"{where} {role}", vers, errors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--min", default="1.32")
    ap.add_argument("--expect-fail", action="store_true")
    a = ap.parse_args()
    vers = versions(a.min)
    errors = []
    count = 0
    for f in a.files:
        with open(f) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
        for i, doc in enumerate(docs):
            where = f"{f}#{i}"
            count += 1
            group = doc.get("apiVersion", "").split("/")[0]
            if group == "trainer.kubeflow.org":
                trainer(doc, where, vers, errors)
            elif group == "kubeflow.org" and doc.get("kind") == "PyTorchJob":
                pytorchjob(doc, where, vers, errors)
            else:
                core(doc, where, vers, errors)
    for e in errors:
        print("ERROR", e)
    print(f"{count} objects in {len(a.files)} files, Kubernetes {vers[0]}-{vers[-1]}: "
          f"{len(errors)} errors")
    failed = bool(errors)
    sys.exit(0 if failed == a.expect_fail else 1)


if __name__ == "__main__":
    main()
