# make deb / make rpm: ferry's packages (packaging/), into build/pkg.
.PHONY: deb rpm
deb:
	@scripts/deps.sh build pkg
	@packaging/build.sh deb

rpm:
	@scripts/deps.sh build pkg
	@packaging/build.sh rpm
