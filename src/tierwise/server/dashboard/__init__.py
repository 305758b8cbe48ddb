"""The dashboard: server-rendered pages (Jinja2 templates, no scripts) and a JSON
report over the request log, behind the API's keys."""

from tierwise.server.dashboard.access import COOKIE
from tierwise.server.dashboard.handlers import DashboardState, add_dashboard_routes

__all__ = ["COOKIE", "DashboardState", "add_dashboard_routes"]
