#!/usr/bin/env bash
# `make run`: the platform on SQLite with jobs inline and demo data, and (without PAYMENT_API_KEY) localstripe
# playing the payment provider on loopback. The app listens before the demo data is loaded: loading it invoices last
# month's statement, and the provider's webhooks for that invoice (sent a second later) must find the app up.
# Without FLASK_MAIL_SERVER, a mail catcher (devtools/mail_catcher.py) is the SMTP server; the back office's mail page
# shows what it caught.
# Settings: FLASK (the flask command), PYTHON, APP_PORT (5000), PROVIDER_PORT (8420), MAIL_CATCHER_PORT (8025),
# and the app's own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
FLASK=${FLASK:-.venv/bin/flask --app wsgi}
PYTHON=${PYTHON:-.venv/bin/python}
APP_PORT=${APP_PORT:-5000}
PROVIDER_PORT=${PROVIDER_PORT:-8420}
STORE=${PROVIDER_STORE:-instance/localstripe.pickle}
MAIL_CATCHER_PORT=${MAIL_CATCHER_PORT:-8025}

children=()
stop() { for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop EXIT INT TERM

wait_for_port() {  # up to 20 s for a loopback port to accept connections
  "$PYTHON" -c "import socket, sys, time
for _ in range(200):
    if socket.socket().connect_ex(('127.0.0.1', $1)) == 0: sys.exit(0)
    time.sleep(0.1)
sys.exit('nothing listens on port $1')"
}

$FLASK db upgrade
$FLASK network load
if [ -z "${PAYMENT_API_KEY:-}" ]; then
  export PAYMENT_API_BASE="http://127.0.0.1:$PROVIDER_PORT"
  mkdir -p "$(dirname "$STORE")"
  "$PYTHON" devtools/localstripe_server.py --port "$PROVIDER_PORT" --store "$STORE" & children+=($!)
  wait_for_port "$PROVIDER_PORT"
  echo "payment provider (localstripe): $PAYMENT_API_BASE"
  $FLASK settlement provider-webhook --url "http://127.0.0.1:$APP_PORT/api/v1/webhooks/payments"
fi
if [ -z "${FLASK_MAIL_SERVER:-}" ]; then
  export FLASK_MAIL_SERVER=127.0.0.1 FLASK_MAIL_PORT="$MAIL_CATCHER_PORT"
  export FLASK_MAIL_CATCHER_DIR="${FLASK_MAIL_CATCHER_DIR:-instance/mail}"
  "$PYTHON" devtools/mail_catcher.py --port "$MAIL_CATCHER_PORT" --dir "$FLASK_MAIL_CATCHER_DIR" & children+=($!)
  wait_for_port "$MAIL_CATCHER_PORT"
  echo "mail (caught, not delivered): http://127.0.0.1:$APP_PORT/backoffice/mail"
fi
export FLASK_PUBLIC_URL="${FLASK_PUBLIC_URL:-http://127.0.0.1:$APP_PORT}"
$FLASK run --host 127.0.0.1 --port "$APP_PORT" & app=$!
children+=("$app")
wait_for_port "$APP_PORT"
$FLASK demo load
wait "$app"
