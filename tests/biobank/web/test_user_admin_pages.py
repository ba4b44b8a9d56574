"""Administering accounts in a real browser: an administrator opens an account, its owner
signs in with the temporary password and chooses their own, the administrator locks it (the
owner is signed out at once), unlocks it and resets its password."""

from __future__ import annotations

import pytest

from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("users", demo_participants=2)


def test_open_lock_unlock_and_reset_an_account(server, browser):
    base, _app = server
    admin_context = browser.new_context(viewport={"width": 1280, "height": 720})
    admin = admin_context.new_page()
    login(admin, base, "admin", "admin-demo-pw")
    admin.goto(f"{base}/admin/users")
    admin.fill("input[name=username]", "wang.fang")
    admin.fill("input[name=full_name]", "Wang Fang")
    admin.select_option("select[name=role]", "technician")
    admin.check("#new-user input[name=sites][value=CTR]")
    admin.click("#open-account")
    admin.wait_for_selector("#temporary-password")
    temporary = admin.text_content("#password")
    row = admin.locator("tr[data-user='wang.fang']")
    assert row.locator("td").nth(2).text_content() == "Technician"
    assert row.locator("td").nth(3).text_content() == "CTR"

    owner_context = browser.new_context()
    owner = owner_context.new_page()
    login(owner, base, "wang.fang", temporary)
    owner.goto(f"{base}/account")
    owner.fill("#password-form input[name=current]", temporary)
    owner.fill("#password-form input[name=password]", "ice-and-dry-ice")
    owner.fill("#password-form input[name=password_again]", "ice-and-dry-ice")
    owner.click("#change-password")
    owner.wait_for_selector(".flash.ok")
    assert owner.text_content(".flash.ok") == "Your password is changed."

    # the owner makes a token; the administrator sees it on the account and revokes it
    owner.goto(f"{base}/account")
    owner.fill("#token-form input[name=name]", "rack scanner bench 2")
    owner.click("#token-form button[type=submit]")
    secret = owner.text_content("#token-secret")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert owner.request.get(f"{base}/api/v1/tokens/", headers=bearer).ok
    admin.click("tr[data-user='wang.fang'] a")
    admin.wait_for_selector("#lock-form")
    admin.click("#user-tokens tr[data-token='rack scanner bench 2'] button")
    admin.wait_for_selector(".flash.ok")
    assert "revoked" in admin.text_content("#user-tokens tr[data-token='rack scanner bench 2']")
    assert owner.request.get(f"{base}/api/v1/tokens/", headers=bearer).status == 401
    admin.fill("#lock-form input[name=reason]", "moved to the Shanghai site")
    admin.click("#lock")
    admin.wait_for_selector("#unlock")
    assert "is locked" in admin.text_content(".flash.ok")
    owner.goto(f"{base}/account")
    assert "/login" in owner.url  # signed out at once
    admin.click("#unlock")
    admin.wait_for_selector("#lock-form")
    admin.click("#reset")
    admin.wait_for_selector("#temporary-password")
    again = admin.text_content("#password")
    assert again != temporary
    login(owner, base, "wang.fang", again)
    owner.goto(f"{base}/account")
    assert owner.url.endswith("/account")

    # the last administrator cannot be made a manager: said in words, nothing changed
    admin.goto(f"{base}/admin/users")
    admin.click("tr[data-user='admin'] a")
    admin.select_option("select[name=role]", "manager")
    admin.click("#save")
    admin.wait_for_selector(".flash.error")
    assert "last active administrator" in admin.text_content(".flash.error")
    owner_context.close()
    admin_context.close()
