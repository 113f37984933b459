#!/usr/bin/env bash
# Debian packages the integration tests need (GDAL tools for the COG benchmark comparison,
# PostgreSQL + PostGIS for the stac-fastapi-pgstac reference API). Installed once, then skipped.
set -euo pipefail
need=()
for pkg in gdal-bin postgresql postgresql-15-postgis-3; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "system-deps: missing ${need[*]}; install them with apt-get (as root) or the dependent tests skip" >&2
        exit 0
    fi
    echo "system-deps: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
