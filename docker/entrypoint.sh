#!/bin/sh
# The images' entry point: run the service's console script with the process kind or command given.
#
#   api | relay | consumer | scheduler    the long-running processes (one Kubernetes Deployment each)
#   migrate                               Alembic upgrade to head (the Helm pre-install/pre-upgrade Job)
#   anything else the service's CLI has   e.g. `payment dev-keys`, `metering-and-billing seed-tariffs`,
#                                         `gateway seed-demo`, `<service> settings`, `<service> --help`
#
# UTILIS_SERVICE (set by the image) names the console script; UTILIS_VENV (default /app/.venv) is where it
# lives, so the same script runs against the repository's .venv in tests/deploy.
set -eu
service="${UTILIS_SERVICE:?UTILIS_SERVICE is not set: build the image with --build-arg SERVICE=<service>}"
venv="${UTILIS_VENV:-/app/.venv}"
if [ "$#" -eq 0 ]; then
    set -- api
fi
exec "${venv}/bin/${service}" "$@"
