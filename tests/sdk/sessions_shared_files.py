"""The official databunkerpro SDK against a Bunker server: sessions, shared records and files, as a
client drives them. Run by the suite (sdk.rs) with the server's address and root token (the server
lists users, so BulkListFilesByTag answers). FileGet's raw bytes come through raw_request, as the
SDK's notes say."""

import base64
import json
import sys
import time
import uuid

from databunkerpro import DatabunkerproAPI


def ok(answer, what):
    assert answer.get("status") == "ok", f"{what}: {answer}"
    return answer


def main(base_url, root_token):
    root = DatabunkerproAPI(base_url, root_token)
    anon = DatabunkerproAPI(base_url)
    jane = ok(root.create_user({"login": "jane", "email": "jane@example.com", "name": "Jane",
                                "address": {"city": "Oslo", "street": "Karl Johans gate 1"}}),
              "create_user")["token"]

    # Sessions: an upsert twice replaces; linked to the user its data names; listed for them.
    sid = str(uuid.uuid4())
    ok(root.upsert_session(sid, {"login": "jane", "cart": [1, 2]}), "upsert_session")
    ok(root.upsert_session(sid, {"login": "jane", "cart": [3]}, {"slidingtime": "1h"}), "upsert again")
    got = ok(root.get_session(sid), "get_session")
    assert got["sessiondata"] == {"login": "jane", "cart": [3]}, got
    assert got["token"] == jane, got
    anonymous = "s:" + uuid.uuid4().hex  # express-session style: not a UUID, names no user
    ok(root.upsert_session(anonymous, {"views": 1}), "upsert an anonymous session")
    assert "token" not in ok(root.get_session(anonymous), "get anonymous")
    listed = ok(root.list_user_sessions("email", "jane@example.com"), "list_user_sessions")["rows"]
    assert [row["sessionuuid"] for row in listed] == [sid], listed
    assert listed[0]["sessiondata"] == {"login": "jane", "cart": [3]}, listed
    # Expiry: a 1 s final time passes.
    short = str(uuid.uuid4())
    ok(root.upsert_session(short, {"email": "jane@example.com"}, {"finaltime": "1s"}), "short session")
    ok(root.get_session(short), "short session, live")
    time.sleep(2.1)
    gone = root.get_session(short)
    assert gone == {"status": "error", "message": "The session was not found"}, gone
    ok(root.delete_session(sid), "delete_session")
    assert root.get_session(sid)["status"] == "error"
    assert ok(root.list_user_sessions("login", "jane"), "list after delete")["rows"] == []
    refused = root.upsert_session(str(uuid.uuid4()), {"email": "nobody@example.com"})
    assert refused["status"] == "error", refused

    # Shared records: only the listed fields, read without a token; dead after the final time.
    record = ok(root.create_shared_record("login", "jane", {"fields": "name,address.city",
                                                             "partner": "courier"}),
                "create_shared_record")["recorduuid"]
    shared = ok(anon.get_shared_record(record), "get_shared_record")
    assert shared["data"] == {"name": "Jane", "address": {"city": "Oslo"}}, shared
    ok(root.update_user("login", "jane", {"name": "Jane Doe"}), "update_user")
    assert ok(anon.get_shared_record(record), "shared after update")["data"]["name"] == "Jane Doe"
    brief = ok(root.create_shared_record("login", "jane", {"fields": "email", "finaltime": "1s"}),
               "create_shared_record 1s")["recorduuid"]
    ok(anon.get_shared_record(brief), "brief shared record, live")
    time.sleep(2.1)
    expired = anon.get_shared_record(brief)
    unknown = anon.get_shared_record(str(uuid.uuid4()))
    assert expired == unknown == {"status": "error", "message": "The shared record was not found"}, \
        (expired, unknown)
    ok(root.create_app_data("login", "jane", "shop", {"size": "M", "colour": "blue"}), "create_app_data")
    app_record = ok(root.create_shared_record("login", "jane", {"appname": "shop", "fields": "size"}),
                    "share app data")["recorduuid"]
    assert ok(anon.get_shared_record(app_record), "get shared app data")["data"] == {"size": "M"}

    # Files: a round trip in JSON and raw, duplicates found, tags replaced, listed by tag.
    content = b"%PDF-1.4\n" + bytes(range(256)) * 700  # a little over 2 chunks
    data = base64.b64encode(content).decode()
    made = ok(root.create_file("login", "jane", "passport.pdf", data, {"tags": ["KYC", "id"]}),
              "create_file")
    assert made["duplicate"] is False and made["tags"] == ["id", "kyc"], made
    fileuuid = made["fileuuid"]
    got = ok(root.get_file("login", "jane", fileuuid=fileuuid), "get_file")
    assert base64.b64decode(got["filedata"]) == content, "the content reads back"
    assert got["mimetype"] == "application/pdf" and got["size"] == len(content), got
    by_name = ok(root.get_file("email", "jane@example.com", filename="passport.pdf"), "get_file by name")
    assert by_name["fileuuid"] == fileuuid, by_name
    raw = root.raw_request("FileGet", {"mode": "login", "identity": "jane", "fileuuid": fileuuid,
                                       "raw": True})
    assert raw == content, "raw bytes"
    again = ok(root.create_file("token", jane, "copy.pdf", data), "create_file again")
    assert again["duplicate"] is True and again["fileuuid"] == fileuuid, again
    text = ok(root.create_file("login", "jane", "notes.txt", base64.b64encode(b"hello").decode(),
                               {"mimetype": "text/plain", "tags": "notes"}), "create_file text")
    tags = ok(root.replace_file_tags("login", "jane", fileuuid, ["Passport", "kyc", "kyc"]),
              "replace_file_tags")
    assert tags["tags"] == ["kyc", "passport"], tags
    files = ok(root.list_user_files("login", "jane"), "list_user_files")["files"]
    assert sorted(f["filename"] for f in files) == ["notes.txt", "passport.pdf"], files
    assert all("filedata" not in f and len(f["doublehash"]) == 64 for f in files), files
    only = ok(root.list_user_files("login", "jane", tag="passport"), "list_user_files by tag")["files"]
    assert [f["fileuuid"] for f in only] == [fileuuid], only
    unlock = ok(root.bulk_list_unlock(), "bulk_list_unlock")["unlockuuid"]
    tagged = ok(root.bulk_list_files_by_tag(unlock, "kyc"), "bulk_list_files_by_tag")
    assert tagged["total"] == 1 and tagged["rows"][0]["token"] == jane, tagged
    assert ok(root.bulk_list_files_by_tag(unlock, "id"), "old tag")["total"] == 0
    ok(root.delete_file("login", "jane", text["fileuuid"]), "delete_file")
    assert root.get_file("login", "jane", fileuuid=text["fileuuid"])["status"] == "error"

    # Forget-me: the sessions, shared records and files go with the user.
    ok(root.upsert_session(sid, {"token": jane}), "a session before forget-me")
    ok(root.delete_user("login", "jane"), "delete_user")
    assert root.get_session(sid)["status"] == "error"
    assert anon.get_shared_record(record)["status"] == "error"
    print("sdk: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
