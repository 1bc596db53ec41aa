#!/bin/bash
# packaging/build.sh deb|rpm — make deb / make rpm: ferry's four packages
# (ferry-dkms, ferry-agent, ferry-replicator, ferry-control) into
# build/pkg/deb or build/pkg/rpm, with their SHA512SUMS (what install.sh
# and ferry-control's installation assets check).  docs/packaging.md.
#
#   deb  debhelper, from a copy of the sources with packaging/debian as
#        debian/ (the Debian revision is -1)
#   rpm  packaging/rpm/ferry.spec with Debian's rpmbuild; the build
#        dependencies are Debian's (scripts/deps.sh build), so rpmbuild
#        does not check them (--nodeps); the packages' library
#        dependencies are found by rpm itself
#
# The version is VERSION's.  The sources are the files git knows
# (committed or not, ignored ones aside), or the tree outside a git
# checkout, so that a stale build/ never enters a package; nothing is
# rebuilt when they did not change.
set -euo pipefail
# shellcheck source=scripts/vm/lib.sh
. "$(dirname "$0")/../scripts/vm/lib.sh"
# shellcheck source=packaging/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$FERRY_ROOT"

version=$(cat VERSION)

build_deb() {
	local out=$BUILD/pkg/deb work=$BUILD/pkg/deb-build src
	src=$work/ferry-$version
	up_to_date "$out" && return 0
	rm -rf "$work"
	mkdir -p "$src" "$out"
	source_files | tar --null -T - -cf - | tar -C "$src" -xf -
	cp -r packaging/debian "$src/debian"
	cp packaging/systemd/*.service "$src/debian/"
	# One changelog entry, for VERSION: the history is git's.
	cat >"$src/debian/changelog" <<EOT
ferry ($version-1) unstable; urgency=medium

  * Release $version.

 -- ferry maintainers <maintainers@users.noreply.r-seed-30b47ebf.example>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
EOT
	info "building the Debian packages of ferry $version"
	(cd "$src" && env -u BUILD -u MAKEFLAGS \
		DEB_BUILD_OPTIONS="noautodbgsym${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
		dpkg-buildpackage -b -us -uc -J"$(nproc)") >"$work/build.log" 2>&1 ||
		die "dpkg-buildpackage failed: $(tail -n 5 "$work/build.log" | tr '\n' ' ') (whole log: $work/build.log)"
	rm -f "$out"/*.deb
	mv "$work"/ferry-*_"$version"-1_*.deb "$out/"
	publish "$out" deb
}

build_rpm() {
	local out=$BUILD/pkg/rpm top
	top=$(realpath -m "$BUILD/pkg/rpm-build")
	up_to_date "$out" && return 0
	rm -rf "$top"
	mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS} "$out"
	source_files | tar --null -T - --transform "s|^|ferry-$version/|" -czf \
		"$top/SOURCES/ferry-$version.tar.gz"
	info "building the RPM packages of ferry $version"
	env -u BUILD -u MAKEFLAGS rpmbuild -bb --nodeps --define "_topdir $top" \
		--define "ferry_version $version" packaging/rpm/ferry.spec \
		>"$top/build.log" 2>&1 ||
		die "rpmbuild failed: $(tail -n 5 "$top/build.log" | tr '\n' ' ') (whole log: $top/build.log)"
	rm -f "$out"/*.rpm
	find "$top/RPMS" -name "ferry-*-$version-1.*.rpm" -exec mv {} "$out/" \;
	publish "$out" rpm
}

case ${1:-} in
deb) build_deb ;;
rpm) build_rpm ;;
*)
	echo "usage: $0 deb|rpm" >&2
	exit 2
	;;
esac
