"""The `biobank` command line against a fresh database of its own."""

from __future__ import annotations

from click.testing import CliRunner

from biobank.cli import main
from tests.conftest import separate_database


def _env(tmp_path):
    return {
        "BIOBANK_DATABASE_URL": separate_database(tmp_path, "cli"),
        "BIOBANK_INSTANCE_PATH": str(tmp_path / "instance"),
    }


def _run(env, *args, input=None):
    result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_upgrade_users_tokens_and_demo(tmp_path):
    env = _env(tmp_path)
    assert "database at" in _run(env, "db", "upgrade")
    _run(env, "create-user", "ana", "--role", "manager", "--password", "long-enough-pw")
    token = _run(env, "create-token", "ana").strip()
    assert token.startswith("bbk_")
    summary = _run(env, "demo", "--participants", "40")
    assert "40 participants" in summary

    from biobank import create_app

    app = create_app({"DATABASE_URL": env["BIOBANK_DATABASE_URL"]})
    client = app.test_client()
    r = client.get("/api/v1/specimens/?limit=5", headers={"Authorization": f"Bearer {token}"})
    # ana belongs to no site yet: she sees nothing, but she is authenticated.
    assert r.status_code == 200 and r.json == []
    admin_token = _run(env, "create-token", "admin").strip()
    r = client.get("/api/v1/specimens/?limit=5", headers={"Authorization": f"Bearer {admin_token}"})
    assert len(r.json) == 5
    with app.app_context():
        from biobank.db import db

        db.engine.dispose()


def test_demo_refuses_a_database_that_has_data(tmp_path):
    env = _env(tmp_path)
    _run(env, "db", "upgrade")
    _run(env, "demo", "--participants", "5")
    result = CliRunner().invoke(main, ["demo", "--participants", "5"], env=env)
    assert result.exit_code == 1
    assert "empty database" in result.output


def test_create_user_rejects_short_passwords_and_unknown_sites(tmp_path):
    env = _env(tmp_path)
    _run(env, "db", "upgrade")
    result = CliRunner().invoke(
        main, ["create-user", "bo", "--role", "technician", "--password", "short"], env=env
    )
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output
    result = CliRunner().invoke(
        main,
        ["create-user", "bo", "--role", "technician", "--site", "NOPE", "--password", "long-enough-pw"],
        env=env,
    )
    assert result.exit_code == 1
    assert "no site 'NOPE'" in result.output
