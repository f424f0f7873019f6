"""The function app: creates the app and registers one blueprint per `functions/` module."""

import azure.functions as func

from functions import health
from shared.settings import get_settings

# Fail start-up, naming every missing or bad setting, before any function is served.
get_settings()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)
