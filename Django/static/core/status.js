"use strict";
// The landing page: renders /api/status (first from the page itself, then every 5 s),
// opens a WebSocket through the same host to prove the upgrade path, and shows live
// figures that a second socket brings.
(() => {
  const rows = {};
  document.querySelectorAll("[data-check]").forEach((row) => { rows[row.dataset.check] = row; });

  function show(name, ok, text) {
    const row = rows[name];
    row.classList.remove("pending", "ok", "fail");
    row.classList.add(ok ? "ok" : "fail");
    row.querySelector(".value").textContent = text;
  }

  function render(status) {
    const request = status.request;
    show("request", true, request.via_nginx
      ? `through nginx: X-Forwarded-For ${request.forwarded_for}, X-Forwarded-Proto ${request.forwarded_proto}, Host ${request.host}`
      : `directly to Gunicorn (no X-Forwarded-* headers), Host ${request.host}`);
    show("worker", true, `served by Uvicorn worker PID ${status.worker_pid}`);
    const v = status.versions;
    show("versions", true, `Django ${v.django} · Channels ${v.channels} · channels-redis ${v["channels-redis"]} · Gunicorn ${v.gunicorn} · Uvicorn ${v.uvicorn}`);
    const layer = status.checks.channel_layer;
    show("channel_layer", layer.ok, layer.ok ? `${layer.detail.backend}, round trip ${layer.ms} ms` : layer.error);
    const db = status.checks.database;
    show("database", db.ok, db.ok
      ? `${db.detail.vendor} ${db.detail.version}, query ${db.ms} ms, migrations applied`
      : db.error);
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { headers: { Accept: "application/json" } });
      render(await response.json());
    } catch (error) {
      show("request", false, `status unavailable: ${error}`);
    }
  }

  function openSocket() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/echo/`);
    let sentAt = 0;
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") {
        sentAt = performance.now();
        socket.send(JSON.stringify({ type: "echo", text: "ping" }));
      } else if (frame.type === "echo") {
        const ms = (performance.now() - sentAt).toFixed(1);
        show("websocket", true, `open through ${location.host}, worker PID ${frame.pid}, echo in ${ms} ms`);
      }
    });
    socket.addEventListener("close", () => {
      show("websocket", false, "closed, retrying in 3 s");
      setTimeout(openSocket, 3000);
    });
  }

  // A few live figures from this server's metrics, every 2 s over a socket of their own.
  function openFigures() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/figures/`);
    socket.addEventListener("message", (event) => {
      const f = JSON.parse(event.data);
      const lag = f.lag_p99_ms === null ? "no deliveries" : `${f.lag_p99_ms} ms`;
      show("figures", true, `${f.sockets} sockets open · ${f.messages_per_s} messages/s delivered · delivery lag p99 ${lag}`);
    });
    socket.addEventListener("close", () => {
      show("figures", false, "closed, retrying in 3 s");
      setTimeout(openFigures, 3000);
    });
  }

  render(JSON.parse(document.getElementById("initial-status").textContent));
  setInterval(refresh, 5000);
  openSocket();
  openFigures();
})();
