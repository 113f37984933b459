#!/usr/bin/env bash
# Start or stop a throw-away stac-fastapi-pgstac API over Debian PostgreSQL (+ PostGIS) on loopback.
#
#   scripts/pgstac.sh up   STATE_DIR CATALOG_DIR   # prints the API URL on its last line
#   scripts/pgstac.sh down STATE_DIR
#
# CATALOG_DIR uses clearcube's catalog layout (<collection>/collection.json + <collection>/items.json).
# The server stack lives in its own virtual environment (.cache/pgstac-venv) so its pins never
# touch clearcube's. PostgreSQL refuses to run as root, so as root the cluster runs as `postgres`.
# This is the reference API of the integration tests (DESIGN.md); tests call up/down themselves.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: pgstac.sh up STATE_DIR CATALOG_DIR | down STATE_DIR}
state=${2:?state dir required}
VENV=${CLEARCUBE_PGSTAC_VENV:-$here/.cache/pgstac-venv}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {  # url, seconds
    for _ in $(seq 1 "$(($2 * 5))"); do
        python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

case "$cmd" in
up)
    catalog=${3:?catalog dir required}
    [ -x "$PGBIN/initdb" ] || { echo "pgstac.sh: PostgreSQL not found; run scripts/system-deps.sh (apt-get install postgresql postgresql-15-postgis-3)" >&2; exit 2; }
    if [ ! -x "$VENV/bin/uvicorn" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -U pip
        # Pinned together: pypgstac's migrations must match what stac-fastapi-pgstac queries.
        "$VENV/bin/pip" install -q "stac-fastapi-pgstac[server]==7.2.0" "pypgstac[psycopg]==0.10.0"
    fi
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    chmod 777 "$state"
    if ! as_pg test -w "$state"; then
        echo "pgstac.sh: user postgres cannot write $state; put STATE_DIR where every parent is searchable (e.g. under /tmp)" >&2
        exit 2
    fi
    pgport=$(free_port)
    as_pg "$PGBIN/initdb" -D "$state/pg" -U postgres --auth=trust -E UTF8 >"$state/initdb.log" 2>&1
    as_pg "$PGBIN/pg_ctl" -D "$state/pg" -l "$state/postgres.log" -w \
        -o "-p $pgport -k $state -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    echo "$pgport" >"$state/pgport"
    export PGHOST=127.0.0.1 PGPORT=$pgport PGUSER=postgres PGDATABASE=postgres PGPASSWORD=
    export PGSTAC_DSN="postgresql://postgres@127.0.0.1:$pgport/postgres"
    "$VENV/bin/pypgstac" migrate --dsn "$PGSTAC_DSN" >"$state/migrate.log" 2>&1
    # Folders without collection.json get a minimal collection spanning their items (as the
    # embedded rustac API does): pgstac partitions items by collection and refuses orphans.
    "$VENV/bin/python" - "$catalog" "$state" <<'PY'
import json, pathlib, sys
catalog, state = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
folders = sorted(p for p in catalog.iterdir() if (p / "collection.json").exists() or (p / "items.json").exists())
with open(state / "collections.ndjson", "w") as c, open(state / "items.ndjson", "w") as i:
    for folder in folders:
        items = json.loads((folder / "items.json").read_text()) if (folder / "items.json").exists() else []
        items = items.get("features", []) if isinstance(items, dict) else items
        if (folder / "collection.json").exists():
            collection = json.loads((folder / "collection.json").read_text())
        else:
            boxes = [it["bbox"] for it in items if it.get("bbox")]
            times = sorted(t for it in items for k in ("datetime", "start_datetime", "end_datetime")
                           if (t := it["properties"].get(k)))
            half = [len(b) // 2 for b in boxes]
            bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes),
                    max(b[h] for b, h in zip(boxes, half)), max(b[h + 1] for b, h in zip(boxes, half))] if boxes else [-180, -90, 180, 90]
            collection = {
                "type": "Collection", "stac_version": "1.0.0", "id": folder.name,
                "description": f"{folder.name} (made by pgstac.sh from its items)", "license": "other",
                "extent": {"spatial": {"bbox": [bbox]},
                           "temporal": {"interval": [[times[0], times[-1]] if times else [None, None]]}},
                "links": [],
            }
        c.write(json.dumps(collection) + "\n")
        for item in items:
            item.setdefault("collection", collection["id"])
            i.write(json.dumps(item) + "\n")
PY
    "$VENV/bin/pypgstac" load collections "$state/collections.ndjson" --dsn "$PGSTAC_DSN" --method upsert >>"$state/migrate.log" 2>&1
    "$VENV/bin/pypgstac" load items "$state/items.ndjson" --dsn "$PGSTAC_DSN" --method upsert >>"$state/migrate.log" 2>&1
    apiport=$(free_port)
    PGUSER=postgres PGPASSWORD=trust PGHOST=127.0.0.1 PGPORT=$pgport PGDATABASE=postgres \
        setsid "$VENV/bin/uvicorn" stac_fastapi.pgstac.app:create_app --factory \
        --host 127.0.0.1 --port "$apiport" \
        >"$state/api.log" 2>&1 &
    echo $! >"$state/api.pid"
    url="http://127.0.0.1:$apiport"
    if ! wait_http "$url/collections" 60; then
        echo "pgstac.sh: the API did not come up; see $state/api.log:" >&2
        tail -n 20 "$state/api.log" >&2
        exit 1
    fi
    echo "$url" >"$state/url"
    echo "$url"
    ;;
down)
    [ -d "$state" ] || exit 0
    if [ -f "$state/api.pid" ]; then
        kill "$(cat "$state/api.pid")" 2>/dev/null || true
        rm -f "$state/api.pid"
    fi
    if [ -d "$state/pg" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$state/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: pgstac.sh up STATE_DIR CATALOG_DIR | down STATE_DIR" >&2
    exit 2
    ;;
esac
