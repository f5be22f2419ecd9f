"""The official databunkerpro SDK against a Bunker server: legal bases, agreements and processing
activities, as a client drives them. Run by the suite (sdk.rs) with the server's address and root
token. Where the SDK cannot send a field (usercontrol, newbrief), raw_request sends it."""

import json
import sys
import time

from databunkerpro import DatabunkerproAPI


def ok(answer, what):
    assert answer.get("status") == "ok", f"{what}: {answer}"
    return answer


def raw(api, command, body):
    return json.loads(api.raw_request(command, body))


def agreement(api, mode, identity, brief):
    return ok(api.get_user_agreement(mode, identity, brief), f"get_user_agreement {brief}")["agreement"]


def bases(api):
    return {row["brief"]: row for row in ok(api.list_agreements(), "list_agreements")["rows"]}


def main(base_url, root_token):
    root = DatabunkerproAPI(base_url, root_token)

    # Legal bases: created (one the user controls), refused twice, listed, updated, renamed.
    ok(root.create_legal_basis({"brief": "newsletter", "basistype": "consent", "shortdesc": "News"}),
       "create_legal_basis")
    ok(raw(root, "LegalBasisCreate", {"brief": "Offers", "usercontrol": True}), "create (usercontrol)")
    ok(root.create_legal_basis({"brief": "health-study", "basistype": "legitimate-interest",
                                "requiredflag": True, "requiredmsg": "Needed for the study"}),
       "create_legal_basis health-study")
    duplicate = root.create_legal_basis({"brief": "newsletter"})
    assert duplicate == {"status": "error", "message": "The legal basis record already exists"}, duplicate
    bad = root.create_legal_basis({"brief": "x"})
    assert bad["status"] == "error" and bad["message"].startswith("Invalid brief"), bad
    listed = bases(root)
    assert set(listed) == {"newsletter", "offers", "health-study"}, listed
    assert listed["offers"]["usercontrol"] is True and listed["newsletter"]["usercontrol"] is False
    assert listed["health-study"]["requiredflag"] is True
    ok(root.update_legal_basis("newsletter", {"fulldesc": "Our weekly newsletter"}), "update_legal_basis")
    assert bases(root)["newsletter"]["fulldesc"] == "Our weekly newsletter"

    # Agreements: accepted, read, listed, accepted again, withdrawn.
    ok(root.create_user({"login": "sdk-ann", "email": "sdk-ann@example.com"}), "create_user")
    ok(root.accept_agreement("login", "sdk-ann", "newsletter",
                             {"agreementmethod": "web-form", "referencecode": "form-77", "finaltime": "100d"}),
       "accept_agreement")
    got = agreement(root, "email", "sdk-ann@example.com", "newsletter")
    assert got["status"] == "yes" and got["agreementmethod"] == "web-form", got
    assert got["referencecode"] == "form-77" and got["finaltime"] > 0, got
    ok(root.accept_agreement("login", "sdk-ann", "offers", {"status": "no"}), "accept_agreement refused")
    assert agreement(root, "login", "sdk-ann", "offers")["status"] == "no"
    ok(root.accept_agreement("login", "sdk-ann", "offers", {"status": "agree"}), "accept_agreement again")
    assert agreement(root, "login", "sdk-ann", "offers")["status"] == "yes"
    rows = ok(root.list_user_agreements("login", "sdk-ann"), "list_user_agreements")["rows"]
    assert [(r["brief"], r["status"]) for r in rows] == [("newsletter", "yes"), ("offers", "yes")], rows
    ok(root.cancel_agreement("login", "sdk-ann", "newsletter"), "cancel_agreement")
    got = agreement(root, "login", "sdk-ann", "newsletter")
    assert got["status"] == "no", got
    assert [h["event"] for h in got["history"]] == ["AgreementAccept", "AgreementCancel"], got["history"]

    # A renamed basis carries its agreements.
    ok(raw(root, "LegalBasisUpdate", {"brief": "newsletter", "newbrief": "weekly-news"}), "rename")
    assert agreement(root, "login", "sdk-ann", "weekly-news")["status"] == "no"
    assert root.get_user_agreement("login", "sdk-ann", "newsletter")["status"] == "error"

    # The user's own token: withdraws under user control; otherwise it gets a request for a DPO.
    ok(root.accept_agreement("login", "sdk-ann", "health-study", {}), "accept health-study")
    user = DatabunkerproAPI(base_url, ok(root.create_user_x_token("login", "sdk-ann"), "x token")["xtoken"])
    direct = ok(user.cancel_agreement("login", "sdk-ann", "offers"), "user cancel_agreement offers")
    assert direct.get("result") == "done", direct
    assert agreement(root, "login", "sdk-ann", "offers")["status"] == "no"
    asked = ok(user.cancel_agreement("login", "sdk-ann", "health-study"), "user cancel_agreement health-study")
    assert asked.get("result") == "request-created" and asked.get("requestuuid"), asked
    assert agreement(root, "login", "sdk-ann", "health-study")["status"] == "yes"
    again = ok(user.request_agreement_cancellation("login", "sdk-ann", "health-study"),
               "request_agreement_cancellation")
    assert again["requestuuid"] == asked["requestuuid"], (asked, again)
    request = ok(root.get_user_request(asked["requestuuid"]), "get_user_request")["request"]
    assert request["requesttype"] == "withdraw-consent" and request["brief"] == "health-study", request
    ok(root.approve_user_request(asked["requestuuid"]), "approve_user_request")
    assert agreement(root, "login", "sdk-ann", "health-study")["status"] == "no"
    assert ok(user.list_agreements(), "user list_agreements")["total"] == 3

    # Consent for an e-mail before its user exists, linked when the user is created.
    ok(root.accept_agreement("email", "sdk-later@example.com", "weekly-news", {"referencecode": "early"}),
       "accept_agreement before the user")
    assert agreement(root, "email", "sdk-later@example.com", "weekly-news")["status"] == "yes"
    token = ok(root.create_user({"email": "sdk-later@example.com"}), "create_user later")["token"]
    got = agreement(root, "token", token, "weekly-news")
    assert got["referencecode"] == "early", got
    assert [h["event"] for h in got["history"]] == ["AgreementAccept", "AgreementLinked"], got["history"]

    # Expiry: past its final time it reads expired (the sweeper then records it).
    ok(root.accept_agreement("login", "sdk-ann", "weekly-news", {"finaltime": "1s"}), "accept for 1 s")
    time.sleep(1.5)
    assert agreement(root, "login", "sdk-ann", "weekly-news")["status"] == "expired"

    # Revoked for everyone; a basis in use is kept, deleted; an unused one goes.
    ok(root.revoke_all_agreements("weekly-news"), "revoke_all_agreements")
    assert agreement(root, "token", token, "weekly-news")["status"] == "revoked"
    assert agreement(root, "login", "sdk-ann", "weekly-news")["status"] == "expired", "lapsed, not revoked"
    ok(root.create_legal_basis({"brief": "unused"}), "create unused")
    ok(root.accept_agreement("login", "sdk-ann", "offers", {}), "accept offers")
    ok(root.delete_legal_basis("offers"), "delete_legal_basis in use")
    ok(root.delete_legal_basis("unused"), "delete_legal_basis unused")
    listed = bases(root)
    assert listed["offers"]["status"] == "deleted" and "unused" not in listed, listed
    assert agreement(root, "login", "sdk-ann", "offers")["status"] == "revoked"

    # Processing activities: created, renamed, linked and unlinked (seen in the listing), deleted.
    ok(root.create_processing_activity({"activity": "mailing", "title": "Mailing", "script": "send.py"}),
       "create_processing_activity")
    ok(root.update_processing_activity("mailing", {"newactivity": "e-mailing", "applicableto": "customers"}),
       "update_processing_activity")
    ok(root.link_processing_activity_to_legal_basis("e-mailing", "weekly-news"), "link")
    ok(root.link_processing_activity_to_legal_basis("e-mailing", "health-study"), "link")
    rows = ok(root.list_processing_activities(), "list_processing_activities")["rows"]
    assert [(r["activity"], r["title"], r["briefs"]) for r in rows] == [
        ("e-mailing", "Mailing", ["health-study", "weekly-news"])], rows
    assert rows[0]["applicableto"] == "customers" and rows[0]["script"] == "send.py", rows
    ok(root.unlink_processing_activity_from_legal_basis("e-mailing", "weekly-news"), "unlink")
    rows = ok(user.list_processing_activities(), "user list_processing_activities")["rows"]
    assert rows[0]["briefs"] == ["health-study"], rows
    ok(root.delete_processing_activity("e-mailing"), "delete_processing_activity")
    assert ok(root.list_processing_activities(), "list")["rows"] == []

    print("sdk: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
