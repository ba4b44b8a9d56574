"""The account page: who you are and your API tokens (create, see once, revoke)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import transaction
from biobank.errors import BiobankError
from biobank.services import tokens
from biobank.web.pages import bp, login_required


@bp.route("/account")
@login_required
@roles_required(*ALL_ROLES)
def account() -> Any:
    actor = current_actor()
    return render_template("account.html", tokens=tokens.list_tokens(actor), secret=None)


@bp.post("/account/tokens")
@login_required
@roles_required(*ALL_ROLES)
def account_new_token() -> Any:
    """Create a token and show its secret on this answer only (it is not kept)."""
    actor = current_actor()
    try:
        with transaction():
            token, secret = tokens.issue_token(
                actor, name=request.form.get("name", ""), days=request.form.get("days", type=int) or None
            )
            name = token.name
    except BiobankError as error:
        flash(f"No token created: {error.message}", "error")
        return redirect(url_for("pages.account"))
    return render_template("account.html", tokens=tokens.list_tokens(actor), secret=secret, secret_name=name)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
@roles_required(*ALL_ROLES)
def account_revoke_token(token_id: int) -> Any:
    actor = current_actor()
    try:
        with transaction():
            token = tokens.revoke_token(tokens.get_token(token_id, actor=actor))
            flash(f"Token {token.name} revoked.", "ok")
    except BiobankError as error:
        flash(f"Not revoked: {error.message}", "error")
    return redirect(url_for("pages.account"))
