"""HTTP API of the transparency log and its witness, as a FastAPI router, plus HTTP clients.

Routes (relative to where the router is mounted):

========================  ===============================================================
``POST /entries``          append base64 entries; returns each index (idempotent by content)
``GET /entries/{index}``   one entry
``GET /checkpoint``        the newest signed checkpoint (C2SP note, ``text/plain``)
``POST /checkpoint``       sign a checkpoint of the current tree and collect cosignatures
``GET /root``              the root hash of an earlier tree size
``GET /proof/inclusion``   RFC 9162 inclusion proof of an index in a tree size
``GET /proof/consistency`` RFC 9162 consistency proof between two tree sizes
``POST /bundle``           the :class:`~flexheg.wire.checkpoint.LogBundle` a device needs
``POST /add-checkpoint``   C2SP tlog-witness request to the witness (when one is configured)
========================  ===============================================================

Errors: 400 for invalid input, 404 for what does not exist, 403 when a witness does not trust the
checkpoint's log, 409 when a witness's stored size differs from the request's ``old`` size (the
body is the witness's size), 422 for a rejected proof or entry.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from flexheg.errors import InputError, Reason, Rejected
from flexheg.translog.log import TransparencyLog
from flexheg.translog.witness import Cosigner, Witness, WitnessConflict, collect_cosignatures
from flexheg.wire.checkpoint import Checkpoint, NoteSignature, SignedNote

logger = logging.getLogger(__name__)

MAX_SIZE = (1 << 63) - 1
MAX_BATCH = 10_000
WITNESS_CONTENT_TYPE = "text/x.tlog.size"


class AppendRequest(BaseModel):
    entries: list[str] = Field(max_length=MAX_BATCH, description="Entries in standard base64.")


class AppendedEntry(BaseModel):
    index: int
    duplicate: bool


class AppendResponse(BaseModel):
    entries: list[AppendedEntry]
    size: int


class EntryResponse(BaseModel):
    index: int
    entry: str


class RootResponse(BaseModel):
    size: int
    root_hash: str


class InclusionResponse(BaseModel):
    index: int
    size: int
    proof: list[str]


class ConsistencyResponse(BaseModel):
    old_size: int
    new_size: int
    proof: list[str]


class BundleRequest(BaseModel):
    entries: list[str] = Field(max_length=MAX_BATCH, description="Entries in standard base64.")
    newest_seen_size: int | None = Field(default=None, ge=0, le=MAX_SIZE)
    size: int | None = Field(default=None, ge=0, le=MAX_SIZE)


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid input; the detail says which value and how to fix it."},
    403: {"description": "The checkpoint is not signed by a log that the witness trusts."},
    404: {"description": "No such entry, checkpoint or tree size."},
    409: {"description": "The witness has cosigned another size; the body is that size."},
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise HTTPException(400, f"{what}: not valid standard base64") from None


def _http_error(exc: InputError | Rejected) -> HTTPException:
    if isinstance(exc, Rejected):
        status = 403 if exc.reason == Reason.NOT_LOGGED else 422
        return HTTPException(status, exc.to_dict())
    text = str(exc)
    status = 404 if ("has no entry" in text or "has not signed" in text or "is not in" in text) else 400
    return HTTPException(status, text)


def create_router(
    log: TransparencyLog,
    *,
    witness: Witness | None = None,
    cosigners: Sequence[Cosigner] = (),
    entry_validator: Callable[[bytes], None] | None = None,
    clock: Callable[[], int] = lambda: int(time.time()),
) -> APIRouter:
    """Build the log's routes.

    Args:
        log: the log to serve.
        witness: a witness to serve at ``POST /add-checkpoint`` (optional).
        cosigners: witnesses to ask for cosignatures when ``POST /checkpoint`` signs one.
        entry_validator: called on each entry before it is appended; raises
            :class:`InputError` or :class:`Rejected` to refuse it (for example, anything that is
            not an approval signed by a known approver).
        clock: the current time in POSIX seconds, for cosignature timestamps.
    """
    router = APIRouter(tags=["transparency log"], responses=_ERROR_RESPONSES)

    @router.post("/entries", response_model=AppendResponse)
    def append(request: AppendRequest) -> AppendResponse:
        entries = [_unb64(item, f"entries[{i}]") for i, item in enumerate(request.entries)]
        try:
            if entry_validator is not None:
                for entry in entries:
                    entry_validator(entry)
            appended = log.append(entries)
        except (InputError, Rejected) as exc:
            raise _http_error(exc) from None
        return AppendResponse(
            entries=[AppendedEntry(index=a.index, duplicate=a.duplicate) for a in appended],
            size=log.size(),
        )

    @router.get("/entries/{index}", response_model=EntryResponse)
    def get_entry(index: Annotated[int, Path(ge=0, le=MAX_SIZE)]) -> EntryResponse:
        try:
            return EntryResponse(index=index, entry=_b64(log.entry(index)))
        except InputError as exc:
            raise _http_error(exc) from None

    @router.get("/checkpoint", response_class=PlainTextResponse)
    def get_checkpoint() -> str:
        try:
            return log.checkpoint().to_bytes().decode("utf-8")
        except InputError as exc:
            raise _http_error(exc) from None

    @router.post("/checkpoint", response_class=PlainTextResponse)
    def post_checkpoint() -> str:
        checkpoint = log.sign_checkpoint()
        if cosigners:
            cosignatures, failures = collect_cosignatures(
                checkpoint, cosigners, consistency_proof=log.consistency_proof, now=clock()
            )
            for name, reason in failures.items():
                logger.warning("witness %s did not cosign: %s", name, reason)
            checkpoint = log.add_cosignatures(checkpoint.size, cosignatures)
        return checkpoint.to_bytes().decode("utf-8")

    @router.get("/root", response_model=RootResponse)
    def get_root(size: Annotated[int, Query(ge=0, le=MAX_SIZE)]) -> RootResponse:
        try:
            return RootResponse(size=size, root_hash=_b64(log.root_hash(size)))
        except InputError as exc:
            raise _http_error(exc) from None

    @router.get("/proof/inclusion", response_model=InclusionResponse)
    def inclusion(
        index: Annotated[int, Query(ge=0, le=MAX_SIZE)],
        size: Annotated[int, Query(ge=1, le=MAX_SIZE)],
    ) -> InclusionResponse:
        try:
            proof = log.inclusion_proof(index, size)
        except InputError as exc:
            raise _http_error(exc) from None
        return InclusionResponse(index=index, size=size, proof=[_b64(h) for h in proof])

    @router.get("/proof/consistency", response_model=ConsistencyResponse)
    def consistency(
        old: Annotated[int, Query(ge=0, le=MAX_SIZE)],
        new: Annotated[int, Query(ge=0, le=MAX_SIZE)],
    ) -> ConsistencyResponse:
        try:
            proof = log.consistency_proof(old, new)
        except InputError as exc:
            raise _http_error(exc) from None
        return ConsistencyResponse(old_size=old, new_size=new, proof=[_b64(h) for h in proof])

    @router.post("/bundle")
    def bundle(request: BundleRequest) -> dict[str, Any]:
        entries = [_unb64(item, f"entries[{i}]") for i, item in enumerate(request.entries)]
        try:
            built = log.bundle(entries, newest_seen_size=request.newest_seen_size,
                               size=request.size)
        except InputError as exc:
            raise _http_error(exc) from None
        return built.to_dict()

    if witness is not None:
        _add_witness_route(router, witness, clock)
    return router


def _add_witness_route(router: APIRouter, witness: Witness, clock: Callable[[], int]) -> None:
    @router.post(
        "/add-checkpoint",
        response_class=PlainTextResponse,
        openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}},
                                       "required": True}},
    )
    async def add_checkpoint(request: Request) -> PlainTextResponse:
        body = await request.body()
        try:
            old_size, proof, note = parse_add_checkpoint(body)
            signature = witness.add_checkpoint(
                old_size=old_size, proof=proof, checkpoint=note, now=clock()
            )
        except WitnessConflict as conflict:
            return PlainTextResponse(f"{conflict.size}\n", status_code=409,
                                     media_type=WITNESS_CONTENT_TYPE)
        except (InputError, Rejected) as exc:
            if isinstance(exc, Rejected) and exc.reason == Reason.MALFORMED:
                raise HTTPException(400, exc.to_dict()) from None
            raise _http_error(exc) from None
        return PlainTextResponse(signature.line())


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], bytes]:
    """Parse a C2SP tlog-witness add-checkpoint body: ``old N``, proof lines, blank, note."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("add-checkpoint body is not valid UTF-8") from None
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise InputError("add-checkpoint body has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    size_text = first[4:]
    if not first.startswith("old ") or not size_text.isdigit() or (
        len(size_text) > 1 and size_text.startswith("0")
    ):
        raise InputError("add-checkpoint body must start with 'old <size>'")
    proof: list[bytes] = []
    for position, line in enumerate(lines[1:]):
        try:
            value = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise InputError(f"add-checkpoint proof line {position} is not base64") from None
        proof.append(value)
    return int(size_text), proof, note.encode("utf-8")


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """Build a C2SP tlog-witness add-checkpoint body."""
    lines = [f"old {old_size}", *(_b64(h) for h in proof)]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + checkpoint


class HttpWitness:
    """A :class:`Cosigner` that sends add-checkpoint requests to a witness over HTTP."""

    def __init__(self, name: str, url: str, client: httpx.Client) -> None:
        self._name = name
        self._url = url
        self._client = client

    @property
    def name(self) -> str:
        return self._name

    def add_checkpoint(
        self, *, old_size: int, proof: Sequence[bytes], checkpoint: bytes, now: int
    ) -> NoteSignature:
        del now  # the remote witness reads its own clock
        response = self._client.post(
            self._url, content=format_add_checkpoint(old_size, proof, checkpoint),
            headers={"content-type": "text/plain"},
        )
        if response.status_code == 409:
            raise WitnessConflict(Checkpoint.parse(checkpoint).origin, old_size,
                                  int(response.text.strip()))
        if response.status_code != 200:
            raise Rejected(Reason.WITNESS_QUORUM_NOT_MET,
                           f"witness {self._name} returned HTTP status {response.status_code}: "
                           f"{response.text[:200]}")
        checkpoint_text = Checkpoint.parse(checkpoint).signed_note().text
        note = SignedNote.parse(checkpoint_text + "\n" + response.text, what="cosignature")
        return note.signatures[0]


class HttpLogClient:
    """Reads a remote log's roots, proofs and bundles; a gossip proof source."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        self._base = base_url.rstrip("/")
        self._client = client

    def _get(self, path: str, params: dict[str, int]) -> Any:
        response = self._client.get(f"{self._base}{path}", params=params)
        if response.status_code != 200:
            raise InputError(f"log {self._base}{path} returned HTTP status {response.status_code}")
        return response.json()

    def root_hash(self, size: int | None = None) -> bytes:
        if size is None:
            return self.checkpoint().root_hash
        return base64.b64decode(self._get("/root", {"size": size})["root_hash"])

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        if new_size is None:
            new_size = self.checkpoint().size
        document = self._get("/proof/consistency", {"old": old_size, "new": new_size})
        return [base64.b64decode(h) for h in document["proof"]]

    def checkpoint(self) -> Checkpoint:
        response = self._client.get(f"{self._base}/checkpoint")
        if response.status_code != 200:
            raise InputError(f"log {self._base} has no checkpoint ({response.status_code})")
        return Checkpoint.parse(response.content)


__all__ = [
    "HttpLogClient",
    "HttpWitness",
    "create_router",
    "format_add_checkpoint",
    "parse_add_checkpoint",
]
