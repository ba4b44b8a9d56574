"""API tokens of the signed-in user: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import transaction
from biobank.schemas.tokens import TokenCreatedSchema, TokenCreateSchema, TokenSchema
from biobank.services import tokens

blp = Blueprint("tokens", __name__, description="Your API tokens")


@blp.route("/")
class TokenViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, TokenSchema(many=True))
    def get(self) -> Any:
        """Your tokens, newest first (revoked and expired ones too)"""
        return tokens.list_tokens(current_actor())

    @roles_required(*ALL_ROLES)
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenCreatedSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a token; its secret is in this answer only"""
        with transaction():
            token, secret = tokens.issue_token(current_actor(), **data)
        return {**{k: getattr(token, k) for k in TokenSchema().fields}, "secret": secret}


@blp.route("/<int:token_id>")
class TokenByIdViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, TokenSchema)
    def delete(self, token_id: int) -> Any:
        """Revoke a token: requests carrying it answer 401 from now on"""
        with transaction():
            return tokens.revoke_token(tokens.get_token(token_id, actor=current_actor()))
