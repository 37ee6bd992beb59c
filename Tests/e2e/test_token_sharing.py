"""The documented way to use hsmd's token while hsmd runs (docs/pkcs11.md, "Sharing the token with other
processes"): other processes read public objects without logging in. hsmd must keep serving correctly the
whole time, and the token must be sound afterwards."""
import os
import subprocess
import threading

import hsmdtest as h

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def test_hsmd_keeps_serving_while_tools_read_its_token_without_logging_in(tmp_path):
    with h.serving(h.Daemon()) as daemon:
        names = [h.unique_name("shared") for _ in range(3)]
        bundles = {name: daemon.client.create_key(name, {"kty": "EC-HSM", "crv": "P-256"}) for name in names}
        environment = {**os.environ, "SOFTHSM2_CONF": str(daemon.state_dir / "softhsm2.conf")}
        failures: list[str] = []
        stop = threading.Event()

        def sign_and_verify() -> None:
            client = h.Client(str(daemon.socket_path))
            while not stop.is_set():
                for name in names:
                    digest = h.digest("ES256", name.encode())
                    signed = client.op(name, "sign", {"alg": "ES256", "value": h.b64e(digest)})
                    if signed.status != 200:
                        failures.append(f"sign {name}: {signed}")
                        continue
                    h.verify_locally(bundles[name]["key"], "ES256", name.encode(), h.b64d(signed.json["value"]))

        workers = [threading.Thread(target=sign_and_verify) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            for round_ in range(15):
                listing = subprocess.run(["pkcs11-tool", "--module", MODULE, "--list-objects", "--type", "pubkey"],
                                         env=environment, capture_output=True, text=True, timeout=60)
                assert listing.returncode == 0, listing.stderr
                assert all(name in listing.stdout for name in names), listing.stdout
                name = names[round_ % len(names)]
                exported = tmp_path / f"{name}.der"
                read = subprocess.run(["pkcs11-tool", "--module", MODULE, "--read-object", "--type", "pubkey",
                                       "--label", name, "--output-file", str(exported)],
                                      env=environment, capture_output=True, text=True, timeout=60)
                assert read.returncode == 0, read.stderr
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
        assert failures == [], failures[:10]
        # Still sound: every key works after the tools are done, and after a restart.
        for name in names:
            assert h.ok(daemon.client.get(f"/keys/{name}"))["key"]["x"] == bundles[name]["key"]["x"]
        assert daemon.stop() == 0
        daemon.start()
        for name in names:
            h.ok(daemon.client.op(name, "sign", {"alg": "ES256", "value": h.b64e(h.digest("ES256", b"after"))}))
