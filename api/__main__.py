"""python -m api: serve the HTTP API on REPAIRFLOW_API_PORT."""

import uvicorn

from api.main import create_app
from core.log import configure_logging
from core.settings import load_settings


def main() -> None:
    configure_logging()
    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
