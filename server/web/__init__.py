"""The review web page over a workspace's dataset: queue, example, actions, dashboard (issue 15)."""
from server.web.app import create_app
from server.web.security import ExposureError, check_exposure
from server.web.serve import serve

__all__ = ["ExposureError", "check_exposure", "create_app", "serve"]
