"""Witnesses: this instance keeps and countersigns other instances' custody checkpoints."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import current_actor, roles_required
from biobank.db import transaction
from biobank.models.vocab import Role
from biobank.schemas.witnesses import (
    WitnessArgsSchema,
    WitnessReceiptSchema,
    WitnessRequestSchema,
)
from biobank.services import witnesses

blp = Blueprint(
    "custody", __name__, description="Custody checkpoints witnessed for other LIMS instances of the network"
)


@blp.route("/witness")
class WitnessView(MethodView):
    @roles_required(Role.ADMIN, Role.MANAGER)
    @blp.arguments(WitnessRequestSchema)
    @blp.response(201, WitnessReceiptSchema)
    @blp.alt_response(200, schema=WitnessReceiptSchema, description="The same checkpoint, witnessed before")
    @blp.alt_response(
        409,
        description="Another checkpoint under an id already witnessed, or "
        "an instance witnessed for another account",
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Keep another instance's custody checkpoint and countersign it

        The instance signs in with an account of this one (a manager's token). A checkpoint
        is kept as sent, never replaced: the same one sent again is answered as before,
        another one under the same id is refused.
        """
        with transaction():
            kept, new = witnesses.keep(body["instance"], body["checkpoint"], actor=current_actor())
            answer = witnesses.receipt(kept)
        return answer, 201 if new else 200

    @roles_required(Role.ADMIN, Role.MANAGER)
    @blp.arguments(WitnessArgsSchema, location="query")
    @blp.response(200, WitnessReceiptSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """The checkpoints kept for an instance, oldest first (to the account that sends
        them, and administrators)"""
        return [
            witnesses.receipt(kept) for kept in witnesses.kept_for(args["instance"], actor=current_actor())
        ]
