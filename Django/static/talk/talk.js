"use strict";
// The chat page: history on connect, send on Enter, every message rendered as text
// (textContent, never innerHTML), and reconnection with backoff when the socket drops
// (whatever the close code: 1013 "try again later", 4008 "too slow", 4010 "resync"...).
// Each message has an offset in its room: after a reconnect the page says the last one it
// showed, and the server replays what came meanwhile, or says it cannot ("recovered":
// false) and the page marks where messages may be missing.
(() => {
  const room = JSON.parse(document.getElementById("room-name").textContent);
  const list = document.getElementById("messages");
  const state = document.getElementById("state");
  const errorBox = document.getElementById("error");
  const form = document.getElementById("composer");
  const nickname = document.getElementById("nickname");
  const text = document.getElementById("text");
  const here = document.getElementById("presence");
  let epoch = null;  // the room's epoch and the offset of the last message shown
  let offset = null;
  // Refusals a retry cannot change (realtime/consumers.py, realtime/limits.py, talk/consumers.py).
  const REFUSED = {
    4400: "refused: invalid room name",
    4401: "refused: sign in to chat here",
    4403: "refused: this room is private",
    4429: "refused: you have too many chat tabs open; close one and reload",
  };
  let socket = null;
  let delay = 500;

  // Signed in, the page has no nickname field: the server names the author.
  if (nickname) {
    nickname.value = localStorage.getItem("talk-nickname") || `guest-${Math.random().toString(36).slice(2, 6)}`;
  }

  function setState(name, label) {
    state.className = `state ${name}`;
    state.dataset.state = name;
    state.textContent = label;
  }

  function showError(detail) {
    errorBox.textContent = detail;
    errorBox.hidden = false;
  }

  function markGap() {
    const item = document.createElement("li");
    item.className = "gap";
    item.textContent = "Some messages may be missing here (away too long).";
    list.append(item);
  }

  function addMessage(message) {
    if (message.offset <= offset) return;  // already shown
    offset = message.offset;
    const item = document.createElement("li");
    item.dataset.id = message.id;
    const time = document.createElement("time");
    time.dateTime = message.created_at;
    time.textContent = new Date(message.created_at).toLocaleTimeString();
    const who = document.createElement("strong");
    who.textContent = message.nickname;
    if (message.guest) {
      who.className = "guest";
      who.title = "a guest: anyone may use this name";
      who.textContent += " (guest)";
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = message.text;
    item.append(time, " ", who, ": ", body);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  // Who is in the room: the server's summary, sent on every change (presence=1).
  function showPresence(frame) {
    const names = frame.users.slice();
    if (frame.user_count > names.length) names.push(`${frame.user_count - names.length} more`);
    if (frame.guests) names.push(`${frame.guests} guest${frame.guests === 1 ? "" : "s"}`);
    here.textContent = `Here now: ${names.join(", ") || "nobody"}`;
    here.dataset.sockets = frame.sockets;
  }

  function connect() {
    setState("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const since = offset === null ? "" : `&epoch=${encodeURIComponent(epoch)}&offset=${offset}`;
    socket = new WebSocket(`${scheme}://${location.host}/ws/talk/${encodeURIComponent(room)}/?presence=1${since}`);
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "history") {
        // The first frame of every connection: we are in the room.
        delay = 500;
        state.dataset.worker = frame.worker_pid;
        setState("open", `connected (Uvicorn worker ${frame.worker_pid})`);
        if (frame.recovered !== true) {  // the latest page: start again from it
          const first = frame.messages.length ? frame.messages[0].offset : frame.offset + 1;
          if (frame.epoch !== epoch || first > offset + 1) {
            if (offset !== null) markGap();  // what came between is not on the page
            offset = first - 1;
          }
        }
        epoch = frame.epoch;
        frame.messages.forEach(addMessage);
      } else if (frame.type === "message") {
        if (frame.offset > offset + 1) {  // one went missing: ask for the rest from there
          socket.send(JSON.stringify({ type: "resume", epoch, offset }));
        } else {
          epoch = frame.epoch;
          addMessage(frame);
        }
      } else if (frame.type === "presence") showPresence(frame);
      else if (frame.type === "error") showError(frame.detail);
    });
    socket.addEventListener("close", (event) => {
      if (event.code in REFUSED) {
        setState("closed", REFUSED[event.code]);
        return;
      }
      const wait = delay + Math.random() * 250;
      delay = Math.min(delay * 2, 10000);
      setState("reconnecting", `disconnected, retrying in ${(wait / 1000).toFixed(1)} s`);
      setTimeout(connect, wait);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("not connected; the message was not sent");
      return;
    }
    errorBox.hidden = true;
    const frame = { type: "message", text: text.value };
    if (nickname) {
      localStorage.setItem("talk-nickname", nickname.value);
      frame.nickname = nickname.value;
    }
    socket.send(JSON.stringify(frame));
    text.value = "";
  });

  connect();
})();
