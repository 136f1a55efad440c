"""The host's own admin routes, tracked as the seed shows: each POST is a recorded Run."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from host_auth import login_required

from controlplane import run_tracked

bp = Blueprint("k8s", __name__)


@bp.post("/k8s/apply")
@login_required
@run_tracked("deploy", "deploy:k8s", summary_fn=lambda r: r.get("summary", ""))
def apply():
    manifests = request.form.getlist("manifest") or ["deployment.yaml"]
    # ... kubectl apply would go here ...
    return jsonify(ok=True, summary=f"applied {len(manifests)} manifests", applied=manifests)


@bp.post("/k8s/rollback")
@login_required
@run_tracked("deploy", "deploy:k8s-rollback", summary_fn=lambda r: r.get("summary", ""))
def rollback():
    return jsonify(ok=False, summary="rollback refused: no previous release")
