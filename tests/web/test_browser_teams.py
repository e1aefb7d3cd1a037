"""Teams and passwords in headless Chromium, against the same `run_local.py` stack as
test_browser.py (its fixtures): the tester creates a team from the navigation, adds a colleague
by username, makes them admin and leaves; the colleague sees the team as its admin, changes
their password and logs in with the new one. Saves test-artifacts/team.png, teams.png and password.png."""

from __future__ import annotations

from tests.browser import logged_in_page, screenshot
from tests.web.helpers import PASSWORD
from tests.web.test_browser import add_login, page, pytestmark, stack  # noqa: F401  (fixtures and marks reused)

NAME = "<b>Lab</b>"
NEW_PASSWORD = "a-new-long-test-password-43"


def test_a_team_is_created_a_colleague_added_promoted_and_left(stack, page):
    base, _, log = stack
    add_login(log.parent, "colleague")
    page.on("dialog", lambda dialog: dialog.accept())  # the Leave button asks first
    page.goto(base + "/")
    page.click("nav >> text=Teams")
    page.wait_for_url(base + "/teams/")
    page.fill("#id_name", NAME)
    page.click("form.team-form button[type=submit]")
    page.wait_for_url("**/teams/*/")
    assert page.text_content("h1") == NAME, "the name shown as text"
    page.fill("#id_username", "nobody")
    page.click("form.team-form button[type=submit]")
    assert 'no user is named "nobody"' in page.text_content("form.team-form .error")
    assert [error for error in page.errors if "400 (Bad Request)" in error], "a form with errors is a 400"
    page.errors.clear()
    page.fill("#id_username", "colleague")
    page.click("form.team-form button[type=submit]")
    page.wait_for_selector("tr[data-member=colleague]")
    assert f"Added colleague to {NAME} as a member." in page.text_content(".messages")
    page.locator("tr[data-member=colleague] button", has_text="Make admin").click()
    page.wait_for_selector("tr[data-member=colleague] >> text=Make member")
    assert page.text_content("tr[data-member=colleague] .status") == "admin"
    screenshot(page, "team.png")
    page.click("#leave-team")
    page.wait_for_url(base + "/teams/")
    assert f"You left {NAME}." in page.text_content(".messages")
    assert NAME not in page.text_content("table")
    assert page.errors == []

    colleague = logged_in_page(page.context.browser, base, "colleague")
    colleague.click("nav >> text=Teams")
    colleague.wait_for_url(base + "/teams/")
    row = colleague.locator("tr", has_text=NAME)
    assert row.locator(".status").text_content() == "admin"
    screenshot(colleague, "teams.png")
    colleague.click("nav >> text=Password")
    colleague.wait_for_url(base + "/accounts/password/")
    colleague.fill("#id_old_password", PASSWORD)
    colleague.fill("#id_new_password1", NEW_PASSWORD)
    colleague.fill("#id_new_password2", NEW_PASSWORD)
    screenshot(colleague, "password.png")
    colleague.click("form.password-form button[type=submit]")
    colleague.wait_for_url(base + "/")
    assert "Your password is changed." in colleague.text_content(".messages")
    colleague.click("nav button:has-text('Log out')")
    colleague.wait_for_url(base + "/accounts/login/")
    assert colleague.errors == []
    logged_in_page(page.context.browser, base, "colleague", NEW_PASSWORD)
