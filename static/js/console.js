// ctpanel: a VPS console in xterm.js. Gets a single-use ticket, opens the console WebSocket, sends the
// ticket first, then keystrokes (binary) and window sizes (JSON); shows output as it comes.
(() => {
  const box = document.getElementById("console");
  if (!box || typeof Terminal === "undefined") return;
  const status = document.getElementById("console-status");
  const detach = document.getElementById("console-detach");
  const attach = document.getElementById("console-attach");
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  const encoder = new TextEncoder();
  let socket = null;
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  box.dataset.size = `${term.rows} ${term.cols}`;

  function say(text) { status.textContent = text; box.dataset.state = text; }
  function sendSize() {
    box.dataset.size = `${term.rows} ${term.cols}`;  // what `stty size` prints in the VPS
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ resize: [term.cols, term.rows] }));
  }

  async function connect() {
    say("Connecting…");
    const body = new URLSearchParams({ mode: box.dataset.mode });
    const response = await fetch(box.dataset.ticketUrl, { method: "POST", body, headers: { "X-CSRFToken": csrf } });
    const answer = await response.json();
    if (!response.ok) { say(answer.error || "No console ticket."); return; }
    box.dataset.ticket = answer.ticket;  // kept for the tests that check a used ticket is refused
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${box.dataset.wsPath}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(JSON.stringify({ ticket: answer.ticket, cols: term.cols, rows: term.rows }));
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") { term.write(new Uint8Array(event.data)); return; }
      const message = JSON.parse(event.data);
      if (message.open) { say("Connected"); term.focus(); }
      else if (message.error) say(`Refused: ${message.error}`);
      else if (message.closed) say(`Closed: ${message.closed}`);
    };
    socket.onclose = () => {
      if (box.dataset.state === "Connected") say("Disconnected");
      detach.hidden = true; attach.hidden = false;
    };
    detach.hidden = false; attach.hidden = true;
  }

  term.onData((data) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data)); });
  term.onResize(sendSize);
  window.addEventListener("resize", () => fit.fit());
  detach.addEventListener("click", () => { if (socket) socket.close(); say("Detached"); });
  attach.addEventListener("click", () => { term.reset(); connect(); });
  connect();
})();
