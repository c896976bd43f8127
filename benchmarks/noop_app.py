"""The baseline service: a FastAPI endpoint that only parses the same body (no validation, no
journal) and answers with counts. Run by uvicorn exactly like `revealed serve`."""

from __future__ import annotations

import msgspec
from fastapi import FastAPI, Request, Response

app = FastAPI()
_DECODE = msgspec.json.Decoder()


@app.post("/v1/events")
async def events(request: Request) -> Response:
    rows = [_DECODE.decode(line) for line in (await request.body()).splitlines() if line]
    return Response(msgspec.json.encode({"accepted": len(rows)}), media_type="application/json")
