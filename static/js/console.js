// ctpanel: a VPS console in xterm.js. Gets a single-use ticket, opens the console WebSocket, sends the
// ticket first, then keystrokes (binary) and window sizes (JSON); shows output as it comes.
// Every key goes to the VPS, Tab too; Ctrl+] (as in telnet and virsh console) moves the focus out of the
// terminal to the next control on the page, so the terminal is no keyboard trap.
(() => {
  const box = document.getElementById("console");
  if (!box || typeof Terminal === "undefined") return;
  const status = document.getElementById("console-status");
  const detach = document.getElementById("console-detach");
  const attach = document.getElementById("console-attach");
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14, screenReaderMode: true });
  const fit = new FitAddon.FitAddon();
  const encoder = new TextEncoder();
  let socket = null;
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  box.dataset.size = `${term.rows} ${term.cols}`;
  if (term.textarea) term.textarea.setAttribute("aria-describedby", "console-keys");

  function leave() {
    const controls = [...document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")]
      .filter((el) => !box.contains(el) && !el.disabled && el.tabIndex >= 0 && el.getClientRects().length);
    const next = controls.find((el) => box.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
    (next || controls[0]).focus();
  }
  term.attachCustomKeyEventHandler((event) => {
    if (!event.ctrlKey || event.altKey || event.metaKey || (event.key !== "]" && event.code !== "BracketRight")) {
      return true;
    }
    if (event.type === "keydown") { event.preventDefault(); leave(); }
    return false;  // xterm does not send it to the VPS
  });

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
