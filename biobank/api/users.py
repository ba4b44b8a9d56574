"""User accounts: administrators create, change, lock and unlock them and reset passwords;
everyone changes their own password."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import transaction
from biobank.models.vocab import Role
from biobank.schemas.users import (
    LockSchema,
    PasswordChangeSchema,
    PasswordResetSchema,
    UserCreatedSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)
from biobank.services import users

blp = Blueprint("users", __name__, description="User accounts (administrators)")
ADMINS = (Role.ADMIN,)


@blp.route("/")
class UserViews(MethodView):
    @roles_required(*ADMINS)
    @blp.response(200, UserSchema(many=True))
    def get(self) -> Any:
        """Every account, by username"""
        return users.list_users(actor=current_actor())

    @roles_required(*ADMINS)
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserCreatedSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an account with a temporary password, shown in this answer only"""
        actor = current_actor()
        with transaction():
            user, password = users.open_account(actor=actor, **data)
            user.temporary_password = password  # for this answer only: never stored
        return user


@blp.route("/<int:user_id>")
class UserByIdViews(MethodView):
    @roles_required(*ADMINS)
    @blp.response(200, UserSchema)
    def get(self, user_id: int) -> Any:
        """One account"""
        return users.get_account(user_id, actor=current_actor())

    @roles_required(*ADMINS)
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, data: dict[str, Any], user_id: int) -> Any:
        """Change an account's role, name, e-mail or sites (the last administrator stays one)"""
        actor = current_actor()
        with transaction():
            return users.update_user(users.get_account(user_id, actor=actor), actor=actor, **data)


@blp.route("/<int:user_id>/lock")
class UserLockViews(MethodView):
    @roles_required(*ADMINS)
    @blp.arguments(LockSchema)
    @blp.response(200, UserSchema)
    def post(self, data: dict[str, Any], user_id: int) -> Any:
        """Lock an account, with the reason: its browsers are signed out, its tokens refused"""
        actor = current_actor()
        with transaction():
            return users.lock_user(
                users.get_account(user_id, actor=actor), actor=actor, reason=data["reason"]
            )


@blp.route("/<int:user_id>/unlock")
class UserUnlockViews(MethodView):
    @roles_required(*ADMINS)
    @blp.response(200, UserSchema)
    def post(self, user_id: int) -> Any:
        """Unlock an account, and lift a lockout after wrong passwords"""
        actor = current_actor()
        with transaction():
            return users.unlock_user(users.get_account(user_id, actor=actor), actor=actor)


@blp.route("/<int:user_id>/password-reset")
class UserPasswordResetViews(MethodView):
    @roles_required(*ADMINS)
    @blp.response(200, PasswordResetSchema)
    def post(self, user_id: int) -> Any:
        """Give an account a new temporary password, shown in this answer only"""
        actor = current_actor()
        with transaction():
            password = users.reset_password(users.get_account(user_id, actor=actor), actor=actor)
        return {"temporary_password": password}


@blp.route("/me/password")
class OwnPasswordViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    def post(self, data: dict[str, Any]) -> Any:
        """Change your own password, giving the current one"""
        with transaction():
            users.change_password(
                current_actor().account(), current=data["current_password"], new=data["password"]
            )
