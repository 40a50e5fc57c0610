"""The dashboard: coverage against quotas, rejection reasons by count, the latest runs' loss and eval plots."""
from __future__ import annotations

from pathlib import Path

import datagen
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from server.web.context import render, workspace

router = APIRouter()
LATEST_RUNS = 3
PLOTS = ("loss", "eval")


def _plot_path(ws, record, plot: str) -> Path | None:
    folder = Path(ws.runs_dir) / record.id
    path = Path(record.artifacts.get("loss_plot", folder / "loss.png")) if plot == "loss" else folder / "eval.png"
    return path if path.is_file() else None


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    import training

    ws = workspace(request)
    runs = [(record, [p for p in PLOTS if _plot_path(ws, record, p)]) for record in training.list_runs(ws)[:LATEST_RUNS]]
    return render(request, "dashboard.html", coverage=datagen.coverage(ws).categories,
                  reasons=datagen.rejection_reasons(ws), runs=runs)


@router.get("/runs/{run_id}/{plot}.png")
def run_plot(request: Request, run_id: str, plot: str) -> Response:
    import training

    ws = workspace(request)
    if plot not in PLOTS:
        raise HTTPException(404, f"no plot {plot!r}; plots: {', '.join(PLOTS)}")
    try:
        record = training.get_run(ws, run_id)  # refuses ids with '/' or a leading '.'
    except training.RunNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    path = _plot_path(ws, record, plot)
    if path is None:
        raise HTTPException(404, f"run {run_id} has no {plot} plot yet")
    return FileResponse(path, media_type="image/png")
