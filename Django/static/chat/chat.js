"use strict";
// The chat page: history on connect, send on Enter, every message rendered as text
// (textContent, never innerHTML), and reconnection with backoff when the socket drops.
(() => {
  const room = JSON.parse(document.getElementById("room-name").textContent);
  const list = document.getElementById("messages");
  const state = document.getElementById("state");
  const errorBox = document.getElementById("error");
  const form = document.getElementById("composer");
  const nickname = document.getElementById("nickname");
  const text = document.getElementById("text");
  const shown = new Set();  // history is sent again after a reconnect
  const CLOSE_INVALID_ROOM = 4400;
  let socket = null;
  let delay = 500;

  nickname.value = localStorage.getItem("chat-nickname") || `guest-${Math.random().toString(36).slice(2, 6)}`;

  function setState(name, label) {
    state.className = `state ${name}`;
    state.dataset.state = name;
    state.textContent = label;
  }

  function showError(detail) {
    errorBox.textContent = detail;
    errorBox.hidden = false;
  }

  function addMessage(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    const item = document.createElement("li");
    item.dataset.id = message.id;
    const time = document.createElement("time");
    time.dateTime = message.created_at;
    time.textContent = new Date(message.created_at).toLocaleTimeString();
    const who = document.createElement("strong");
    who.textContent = message.nickname;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = message.text;
    item.append(time, " ", who, ": ", body);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function connect() {
    setState("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/`);
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "history") {
        // The first frame of every connection: we are in the room.
        delay = 500;
        state.dataset.worker = frame.worker_pid;
        setState("open", `connected (Uvicorn worker ${frame.worker_pid})`);
        frame.messages.forEach(addMessage);
      } else if (frame.type === "message") addMessage(frame);
      else if (frame.type === "error") showError(frame.detail);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === CLOSE_INVALID_ROOM) {
        setState("closed", "refused: invalid room name");
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
    localStorage.setItem("chat-nickname", nickname.value);
    socket.send(JSON.stringify({ type: "message", nickname: nickname.value, text: text.value }));
    text.value = "";
  });

  connect();
})();
