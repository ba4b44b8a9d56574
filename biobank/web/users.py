"""Administration of accounts: open one (its temporary password shown once), change its role,
sites, name and e-mail, lock it with a reason, unlock it, reset its password; and one's own
password on the account page."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import db, transaction
from biobank.errors import BiobankError, InvalidInput
from biobank.models import Site, User
from biobank.models.vocab import Role
from biobank.services import sites, tokens, users
from biobank.web.pages import bp, login_required
from biobank.web.tables import Column, Table

ADMINS = (Role.ADMIN,)


def _choices() -> dict[str, Any]:
    return {
        "roles": list(Role),
        "all_sites": db.session.scalars(sites.list_sites(actor=current_actor()).order_by(Site.name)).all(),
    }


def _role(text: str | None) -> Role | None:
    return Role(text) if text in {r.value for r in Role} else None


USER_TABLE = Table(
    "users",
    {
        "username": Column("Username", lambda u: u.username, User.username),
        "name": Column("Name", lambda u: u.full_name, User.full_name),
        "role": Column("Role", lambda u: u.role, User.role),
        "sites": Column("Sites", lambda u: " ".join(sorted(s.code for s in u.sites))),
        "state": Column("State", lambda u: "active" if u.is_active else "locked", User.is_active),
        "last_sign_in": Column("Last sign-in", lambda u: u.last_login_at, User.last_login_at),
        "email": Column("E-mail", lambda u: u.email, shown=False),
    },
    default_sort="username",
    tie=User.id,
)


def _users_found() -> Any:
    role = request.args.get("role") or None
    state = request.args.get("state") or None
    if role is not None and _role(role) is None:
        abort(400, f"unknown role {role!r}")
    if state not in (None, "active", "locked"):
        abort(400, f"unknown state {state!r}: active or locked")
    return users.users_query(
        actor=current_actor(), role=_role(role), active=None if state is None else state == "active"
    )


@bp.route("/admin/users.csv")
@login_required
@roles_required(*ADMINS)
def user_csv() -> Any:
    """The accounts the filters find, every one, as CSV."""
    return USER_TABLE.csv(_users_found(), request.args)


@bp.route("/admin/users", methods=["GET", "POST"])
@login_required
@roles_required(*ADMINS)
def user_admin() -> Any:
    """Every account; a form opens a new one."""
    actor = current_actor()
    password = opened = None
    status = 200
    if request.method == "POST":
        try:
            with transaction():
                user, password = users.open_account(
                    actor=actor,
                    username=request.form.get("username", "").strip(),
                    role=_role(request.form.get("role")) or Role.TECHNICIAN,
                    full_name=request.form.get("full_name", "").strip(),
                    email=request.form.get("email", "").strip() or None,
                    site_codes=request.form.getlist("sites"),
                )
                opened = user.username
        except BiobankError as error:
            flash(f"No account opened: {error.message}.", "error")
            status = 422
    page = USER_TABLE.page(_users_found(), request.args)
    return render_template(
        "users.html",
        page=page,
        role=request.args.get("role", ""),
        state=request.args.get("state", ""),
        password=password,
        opened=opened,
        **_choices(),
    ), status


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@login_required
@roles_required(*ADMINS)
def user_detail(user_id: int) -> Any:
    """One account: change it, lock or unlock it, reset its password."""
    actor = current_actor()
    password = None
    if request.method == "POST":
        what = request.form.get("do", "save")
        try:
            with transaction():
                user = users.get_account(user_id, actor=actor)
                if what == "lock":
                    users.lock_user(user, actor=actor, reason=request.form.get("reason", ""))
                    done = f"{user.username} is locked: signed out everywhere, tokens refused."
                elif what == "unlock":
                    users.unlock_user(user, actor=actor)
                    done = f"{user.username} is unlocked."
                elif what == "reset":
                    password = users.reset_password(user, actor=actor)
                    done = f"{user.username} has a new temporary password."
                else:
                    users.update_user(
                        user,
                        actor=actor,
                        role=_role(request.form.get("role")),
                        full_name=request.form.get("full_name", "").strip() or None,
                        email=request.form.get("email", "").strip(),
                        site_codes=request.form.getlist("sites"),
                    )
                    done = f"{user.username} saved."
            flash(done, "ok")
        except BiobankError as error:
            flash(f"Not done: {error.message}.", "error")
        if password is None:
            return redirect(url_for("pages.user_detail", user_id=user_id))
    return render_template(
        "user.html",
        user=(user := users.get_account(user_id, actor=actor)),
        password=password,
        tokens=tokens.list_tokens(user),
        **_choices(),
    )


@bp.post("/admin/users/<int:user_id>/tokens/<int:token_id>/revoke")
@login_required
@roles_required(*ADMINS)
def user_revoke_token(user_id: int, token_id: int) -> Any:
    """Revoke one of an account's API tokens (a leaked or forgotten one)."""
    actor = current_actor()
    try:
        with transaction():
            token = tokens.get_token(token_id, actor=actor)
            if token.user_id != users.get_account(user_id, actor=actor).id:
                raise InvalidInput(f"token {token_id} is not this account's", field="token")
            tokens.revoke_token(token)
            flash(f"Token {token.name} revoked: it answers 401 from now on.", "ok")
    except BiobankError as error:
        flash(f"Not revoked: {error.message}.", "error")
    return redirect(url_for("pages.user_detail", user_id=user_id) + "#user-tokens")


@bp.post("/account/password")
@login_required
@roles_required(*ALL_ROLES)
def account_password() -> Any:
    """Change one's own password, giving the current one."""
    new = request.form.get("password", "")
    try:
        if new != request.form.get("password_again", ""):
            raise InvalidInput("the two new passwords differ", field="password_again")
        with transaction():
            users.change_password(current_actor().account(), current=request.form.get("current", ""), new=new)
        flash("Your password is changed.", "ok")
    except BiobankError as error:
        flash(f"Password not changed: {error.message}.", "error")
    return redirect(url_for("pages.account") + "#password")
