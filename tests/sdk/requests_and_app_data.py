"""The official databunkerpro SDK against a Bunker server: app data and user requests, as a
client would drive them. Run by the suite (sdk.rs) with the server's address and root token."""

import sys

from databunkerpro import DatabunkerproAPI


def ok(answer, what):
    assert answer.get("status") == "ok", f"{what}: {answer}"
    return answer


def main(base_url, root_token):
    root = DatabunkerproAPI(base_url, root_token)
    ok(root.create_user({"login": "sdk-jane", "email": "sdk-jane@example.com", "city": "Leeds"}), "create_user")

    # App data: create, read, update (merge), names, versions, delete.
    ok(root.create_app_data("login", "sdk-jane", "shop", {"size": "M"}), "create_app_data")
    assert ok(root.get_app_data("login", "sdk-jane", "shop"), "get_app_data")["appdata"] == {"size": "M"}
    ok(root.update_app_data("login", "sdk-jane", "shop", {"colour": "red"}), "update_app_data")
    got = ok(root.get_app_data("email", "sdk-jane@example.com", "shop"), "get_app_data by email")
    assert got["appdata"] == {"size": "M", "colour": "red"}, got
    assert ok(root.list_app_data_names("login", "sdk-jane"), "list_app_data_names")["apps"] == ["shop"]
    assert "shop" in ok(root.list_app_names(), "list_app_names")["apps"]
    versions = ok(root.list_app_data_versions("login", "sdk-jane", "shop"), "list_app_data_versions")["versions"]
    assert [v["version"] for v in versions] == [1, 2], versions

    # A user's own token asks; nothing changes until the DPO (here root) approves.
    token = ok(root.create_user_x_token("login", "sdk-jane"), "create_user_x_token")["xtoken"]
    user = DatabunkerproAPI(base_url, token)
    refused = user.update_user("login", "sdk-jane", {"city": "York"})
    assert refused.get("status") == "error", refused
    asked = ok(user.request_user_update("login", "sdk-jane", {"city": "York"}), "request_user_update")
    again = ok(user.request_user_update("login", "sdk-jane", {"city": "York"}), "request_user_update again")
    assert again["requestuuid"] == asked["requestuuid"], (asked, again)
    assert ok(root.get_user("login", "sdk-jane"), "get_user")["profile"]["city"] == "Leeds"
    request = ok(root.get_user_request(asked["requestuuid"]), "get_user_request")["request"]
    assert request["change"] == {"city": "York"} and request["original"]["city"] == "Leeds", request
    listed = ok(user.list_user_requests("login", "sdk-jane"), "list_user_requests")
    assert listed["total"] == 1, listed
    ok(root.approve_user_request(asked["requestuuid"]), "approve_user_request")
    assert ok(root.get_user("login", "sdk-jane"), "get_user")["profile"]["city"] == "York"
    closed = root.approve_user_request(asked["requestuuid"])
    assert closed == {"status": "error", "message": "This user request is closed"}, closed

    # Cancelled with a reason (the SDK sends only options['reason']); app-data and patch requests.
    patch = ok(user.request_user_patch("login", "sdk-jane", [{"op": "replace", "path": "/city", "value": "Hull"}]),
               "request_user_patch")
    ok(root.cancel_user_request(patch["requestuuid"], {"reason": "asked twice"}), "cancel_user_request")
    assert ok(root.get_user("login", "sdk-jane"), "get_user")["profile"]["city"] == "York"
    change = ok(user.request_app_data_update("login", "sdk-jane", "shop", {"size": "L"}), "request_app_data_update")
    ok(root.approve_user_request(change["requestuuid"]), "approve app data")
    assert ok(root.get_app_data("login", "sdk-jane", "shop"), "get_app_data")["appdata"]["size"] == "L"
    unlock = ok(root.bulk_list_unlock(), "bulk_list_unlock")["unlockuuid"]
    everything = ok(root.bulk_list_all_user_requests(unlock), "bulk_list_all_user_requests")
    assert everything["total"] == 3, everything

    # Forget-me through a request.
    forget = ok(user.request_user_deletion("login", "sdk-jane"), "request_user_deletion")
    ok(root.approve_user_request(forget["requestuuid"]), "approve forget-me")
    gone = root.get_user("login", "sdk-jane")
    assert gone.get("status") == "error", gone
    print("sdk: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
