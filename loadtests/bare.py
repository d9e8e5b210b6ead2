"""The bare-framework ceiling: a FastAPI GET returning a constant, served by uvicorn with uvloop and
httptools like the services' APIs (one process). ``python -m loadtests.bare PORT``."""

from __future__ import annotations

import sys

from fastapi import FastAPI


def create() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/")
    async def constant() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8999
    uvicorn.run(
        "loadtests.bare:create",
        factory=True,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
