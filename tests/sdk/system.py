"""The official databunkerpro SDK against a Bunker server: statistics, the licence call, subject
access reports and the main tenant's cross-tenant profile commands, as a client drives them. Run
by the suite (sdk.rs) with the server's address and root token (the server lists users, so
search_user_profiles answers)."""

import sys

from databunkerpro import DatabunkerproAPI


def ok(answer, what):
    assert answer.get("status") == "ok", f"{what}: {answer}"
    return answer


def main(base_url, root_token):
    root = DatabunkerproAPI(base_url, root_token)
    acme_token = ok(root.create_tenant({"tenantname": "acme", "tenantorg": "Acme"}), "create_tenant")["xtoken"]
    acme = DatabunkerproAPI(base_url, acme_token, "acme")
    jane = ok(root.create_user({"email": "jane@example.com", "name": "Jane <b>D</b>"}), "create_user")["token"]
    ok(acme.create_user({"email": "jane@example.com", "name": "Jane of Acme"}), "create_user in acme")

    stats = ok(root.get_system_stats(), "get_system_stats")
    assert stats["stats"]["numusers"] == 2 and stats["stats"]["numtenants"] == 2, stats
    assert ok(acme.get_system_stats(), "tenant stats")["stats"]["numusers"] == 1
    assert ok(root.set_license_key("any"), "set_license_key")["result"] == "done"

    report = ok(root.get_user_report("email", "jane@example.com"), "get_user_report")["report"]
    assert report["token"] == jane and report["profile"]["name"] == "Jane <b>D</b>", report
    assert any(e["action"] == "UserCreate" for e in report["audit"]["events"]), report
    html = ok(root.get_user_html_report("token", jane), "get_user_html_report")["html"]
    assert "<b>D</b>" not in html and "Jane" in html, html[:200]

    unlock = ok(root.bulk_list_unlock(), "bulk_list_unlock")["unlockuuid"]
    found = ok(root.get_user_profiles("email", "jane@example.com", unlock), "get_user_profiles")
    assert found["total"] == 2, found
    assert [r["tenantname"] for r in found["rows"]] == ["default", "acme"], found
    fuzzy = ok(root.search_user_profiles("jane@exampel.com", unlock), "search_user_profiles")
    assert len(fuzzy["rows"]) == 2, fuzzy
    acme_jane = found["rows"][1]["token"]
    gone = ok(root.delete_user_profiles("email", "jane@example.com", unlock, "acme"), "delete_user_profiles")
    assert gone["rows"] == [{"token": acme_jane, "tenantid": 2, "tenantname": "acme"}], gone
    assert acme.get_user("email", "jane@example.com")["status"] == "error"
    back = ok(root.restore_user_profile(acme_jane, unlock, 2), "restore_user_profile")
    assert back["token"] == acme_jane and back["profile"]["name"] == "Jane of Acme", back
    assert ok(acme.get_user("email", "jane@example.com"), "get restored")["token"] == acme_jane
    refused = acme.get_user_profiles("email", "jane@example.com", unlock)
    assert refused["status"] == "error", refused
    # GET /metrics, no token, parsed by the SDK: the traffic above is counted, by route.
    metrics = root.get_system_metrics()
    assert "status" not in metrics, metrics
    created = 'http_requests_total{method="POST",path="/v2/UserCreate",status="200"}'
    assert metrics.get(created, 0) >= 2, sorted(metrics)[:20]
    assert metrics.get('bunker_db_pool_connections{state="max"}', 0) >= 1, sorted(metrics)[:20]
    assert metrics.get("process_resident_memory_bytes", 0) > 0, sorted(metrics)[:20]
    assert not any("acme" in name for name in metrics), "a tenant name in a label"
    print("sdk: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
