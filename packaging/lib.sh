# shellcheck shell=bash
# packaging/lib.sh — shared by packaging/build.sh (deb and rpm).

# The files that go into a package build: what git knows (committed or
# not, ignored files aside), or the tree without build/ outside git.
# NUL-separated, relative to the repository root.
source_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z -co --exclude-standard
	else
		find . -path ./build -prune -o -type f -printf '%P\0'
	fi
}

# A digest of those files' names and contents: the packages in build/pkg
# are rebuilt only when it changes (the tests and the demo ask for them).
source_stamp() {
	source_files | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum |
		cut -c1-64
}

# OUT holds the packages of these very sources already (its .sources
# stamp): list them and succeed, else fail.
up_to_date() {
	local out=$1
	[ -f "$out/SHA512SUMS" ] &&
		[ "$(cat "$out/.sources" 2>/dev/null)" = "$(source_stamp)" ] &&
		ls "$out"
}

# The packages with extension EXT now in OUT: their SHA512SUMS and the
# sources' stamp.
publish() {
	local out=$1 ext=$2
	(cd "$out" && sha512sum ferry-*."$ext" >SHA512SUMS)
	source_stamp >"$out/.sources"
	ls "$out"
}
