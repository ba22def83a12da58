"""The HTTP service of ``m6bench serve``: a FastAPI app over one loaded artifact.

:func:`create_app` takes a :class:`~m6rec_bench.artifacts.Loaded` (or a ready
:class:`~m6rec_bench.serve.scoring.Recommender`) and returns the app; ``uvicorn.run(app)`` serves
it. Every error a client can cause is a 4xx with a JSON body ``{"error": <code>, "detail":
<message>, …}``: unknown user 404, unknown item ids 422 (named in ``unknown_items``), a malformed
body, parameter or ``k`` out of range 422, a fold-in request to a model that cannot fold in 400.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from m6rec_bench import __version__
from m6rec_bench.serve.scoring import MAX_K, MAX_LIST, Ranking, Recommender, ServeError, fold_in_models

log = logging.getLogger(__name__)

ItemId = Annotated[StrictStr | StrictInt, Field(description="an item id as in the dataset (its item_id token)",
                                                examples=["242"])]
ItemList = Annotated[list[ItemId], Field(min_length=1, max_length=MAX_LIST)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"how many items to return (1–{MAX_K}, at most the number of items)")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemsQuery(_Body):
    """An anonymous user given by the items they interacted with."""

    items: ItemList
    k: K = 10

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": ["50", "172", "181"], "k": 10}]})


class NewInteractions(_Body):
    """Items a known user has just interacted with."""

    items: ItemList

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": ["50", "172"]}]})


class ScoredItem(BaseModel):
    item_id: str
    score: float = Field(description="the model's score (higher is better); comparable within one answer")


class Recommendations(BaseModel):
    """Top-k items, best first; ties broken by the smaller internal item id."""

    user_id: str | None = Field(description="the known user, or null for an anonymous item list")
    k: int
    items: list[ScoredItem]
    folded_in: bool = Field(description="whether the user representation was built from items given through the "
                                        "API (an anonymous list, or interactions posted for this user)")
    n_excluded: int = Field(description="items left out of the ranking: training history, posted items, the list")


class InteractionsAdded(BaseModel):
    user_id: str
    added: list[str] = Field(description="items new to this user, now excluded from their answers")
    already_known: list[str] = Field(description="items already in the user's training history or posted before")
    n_added: int = Field(description="items posted for this user since the service started")
    folded_in: bool = Field(description="whether this model moves the user's representation toward posted items "
                                        "(otherwise they are only excluded)")


class Health(BaseModel):
    status: str
    model: str = Field(description="the leaderboard row name of the served model")
    model_class: str
    dataset: str
    protocol: str
    seed: int
    record: str = Field(description="path of the record the artifact belongs to")
    cell_id: str
    n_users: int
    n_items: int
    fold_in: bool = Field(description="whether POST /recommendations (anonymous item lists) works for this model")
    fold_in_models: list[str]


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code: unknown_user, unknown_items, k_out_of_range, invalid_request, "
                                   "fold_in_unsupported, internal_error")
    detail: str = Field(description="what went wrong and what to do")
    unknown_items: list[str] | None = None
    fold_in_models: list[str] | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="for invalid_request: each problem with its location")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "the model cannot answer this request", 404: "unknown user", 422: "invalid request"}
    return {c: {"model": ErrorBody, "description": text[c]} for c in codes}


def _answer(r: Ranking, user_id: str | None, k: int) -> Recommendations:
    return Recommendations(user_id=user_id, k=k, folded_in=r.folded_in, n_excluded=r.n_excluded,
                           items=[ScoredItem(item_id=i, score=s) for i, s in zip(r.items, r.scores, strict=True)])


def _location(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ()))


DESCRIPTION = """\
Recommendations from one trained m6rec-bench artifact ({label}, {dataset}/{protocol}, seed {seed}).

* `GET /users/{{user_id}}/recommendations?k=10` — the model's ranking for a known user, their
  training history and items posted for them excluded.
* `POST /recommendations` `{{"items": [...], "k": 10}}` — an anonymous user given by items (fold-in,
  no retraining). Fold-in models: {fold_in}.
* `POST /users/{{user_id}}/interactions` `{{"items": [...]}}` — new interactions, kept in memory: excluded
  from the user's next answers and, for fold-in models, folded into their representation.

Errors are JSON `{{"error": code, "detail": message}}`: 404 unknown user, 422 unknown items / bad body /
k out of range, 400 fold-in asked of a model that cannot fold in. Fold-in rules:
`m6rec_bench/serve/scoring.py`.
"""


def create_app(loaded: Any) -> FastAPI:
    """The FastAPI app serving ``loaded`` (a ``Loaded`` artifact or a :class:`Recommender`)."""
    rec = loaded if isinstance(loaded, Recommender) else Recommender(loaded)
    record = rec.loaded.record
    app = FastAPI(
        title=f"m6rec-bench: {rec.label}",
        version=__version__,
        description=DESCRIPTION.format(label=rec.label, dataset=record.dataset, protocol=record.protocol,
                                       seed=record.seed, fold_in=", ".join(fold_in_models())),
    )
    app.state.recommender = rec

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": exc.code, "detail": str(exc), **exc.extra})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        summary = "; ".join(f"{_location(e)}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return JSONResponse(status_code=422, content={"error": "invalid_request", "detail": summary, "errors": errors})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:  # a bug, not bad input: log it
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"error": "internal_error",
                                                      "detail": f"{type(exc).__name__} while answering; see the server log"})

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """What is served: model, record, catalogue size, whether it can fold in."""
        return Health(status="ok", model=rec.label, model_class=type(rec.loaded.model).__name__, dataset=record.dataset,
                      protocol=record.protocol, seed=record.seed, record=str(rec.loaded.record_path),
                      cell_id=record.cell_id, n_users=rec.n_users, n_items=rec.n_items,
                      fold_in=rec.scorer.can_fold_in, fold_in_models=fold_in_models())

    @app.get("/users/{user_id}/recommendations", response_model=Recommendations, responses=_errors(404, 422),
             tags=["recommendations"])
    async def recommend_user(
        user_id: Annotated[str, Path(description="a user id of the training data (its user_id token)", examples=["196"])],
        k: Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items (1–{MAX_K}, at most the number of items)")] = 10,
    ) -> Recommendations:
        """Top-k for a known user: the model's ranking, training history and posted items excluded."""
        return _answer(rec.recommend_user(user_id, k), user_id, k)

    @app.post("/recommendations", response_model=Recommendations, responses=_errors(400, 422), tags=["recommendations"])
    async def recommend_items(body: ItemsQuery) -> Recommendations:
        """Top-k for an anonymous list of items (fold-in, no retraining); the list itself is excluded."""
        return _answer(rec.recommend_items(body.items, body.k), None, body.k)

    @app.post("/users/{user_id}/interactions", response_model=InteractionsAdded, responses=_errors(404, 422),
              tags=["users"])
    async def add_interactions(
        user_id: Annotated[str, Path(description="a user id of the training data", examples=["196"])],
        body: NewInteractions,
    ) -> InteractionsAdded:
        """Record new interactions of a known user (in memory): they change the user's next answers."""
        added = rec.add_interactions(user_id, body.items)
        return InteractionsAdded(user_id=user_id, added=added.added, already_known=added.already_known,
                                 n_added=added.n_added, folded_in=rec.scorer.can_fold_in)

    return app
