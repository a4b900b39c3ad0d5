// Chimera chat page: the small bits htmx does not do by itself.
// - show the thinking indicator the moment a message is sent (before the server answers)
// - keep the typed text until the server accepted the turn, then clear it
// - Enter sends, Shift+Enter is a new line; Esc (or Stop) stops an answer while it streams
// - the conversation is a polite live region, busy while an answer streams; focus back to the input
// - re-attach to answers still streaming after a reload
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function esc(s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; }

  var streaming = false;

  function setStreaming(on, messageId) {
    var was = streaming;
    streaming = on;
    var send = $("#send-button"), stop = $("#stop-button"), log = $("#messages");
    if (!send) return;
    send.disabled = on;
    stop.hidden = !on;
    stop.dataset.messageId = messageId || "";
    // The conversation is a polite live region: screen readers wait while it is busy (streaming)
    // and then read the finished answer once, not every token.
    if (log) log.setAttribute("aria-busy", on ? "true" : "false");
    if (was && !on) {
      var input = $("#chat-input");
      if (input && (!document.activeElement || document.activeElement === document.body || document.activeElement === stop)) input.focus();
    }
  }

  function scrollDown() {
    var box = $("#messages");
    if (box) box.scrollTop = box.scrollHeight;
    window.scrollTo(0, document.body.scrollHeight);
  }

  document.addEventListener("htmx:wsConfigSend", function (evt) {
    var form = evt.detail.elt;
    if (form && form.id === "stop-button") {
      // Which answer to stop: set on the button when the turn started (no eval in hx-vals).
      evt.detail.parameters.message_id = form.dataset.messageId || "";
      return;
    }
    if (!form || form.id !== "chat-form") return;
    var params = evt.detail.parameters;
    var text = (params.message || "").trim();
    if (!text) return; // the server answers with a visible error; nothing is stored
    var pending = $("#pending-turn");
    if (pending) {
      pending.innerHTML =
        '<article class="message user pending"><div class="message-content user-text">' + esc(params.message) +
        '</div></article><article class="message assistant pending"><div class="thinking" data-testid="thinking-indicator">' +
        '<span class="dots"><i></i><i></i><i></i></span> Thinking…</div></article>';
    }
    setStreaming(true);
    scrollDown();
  });

  // Whether the page's socket is open, on the chat section (styles and tests read it).
  document.addEventListener("htmx:wsOpen", function () { var c = $("#chat"); if (c) c.dataset.socket = "open"; });
  document.addEventListener("htmx:wsClose", function () { var c = $("#chat"); if (c) c.dataset.socket = "closed"; });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var status = $("#turn-status");
    if (!status) return;
    var state = status.dataset.state;
    var convo = status.dataset.conversationId;
    if (state === "streaming") {
      var input = $("#chat-input");
      if (input && input.dataset.sentValue !== undefined) { input.value = ""; delete input.dataset.sentValue; }
      document.querySelectorAll(".edit-form").forEach(function (f) { f.hidden = true; });
      setStreaming(true, status.dataset.messageId);
    } else if (state === "idle") {
      var pending = $("#pending-turn");
      if (pending && pending.querySelector(".pending")) pending.innerHTML = "";
      setStreaming(false);
    }
    if (convo) {
      var hidden = $("#conversation-id");
      if (hidden) hidden.value = convo;
      var path = "/c/" + convo + "/";
      if (window.location.pathname !== path) window.history.replaceState(null, "", path);
    }
    updateCounter();
    scrollDown();
  });

  document.addEventListener("htmx:wsBeforeSend", function (evt) {
    var input = $("#chat-input");
    if (evt.detail.elt && evt.detail.elt.id === "chat-form" && input) input.dataset.sentValue = input.value;
  });

  document.addEventListener("htmx:wsOpen", function (evt) {
    // Answers still streaming (after a reload, or from another tab): watch them again.
    document.querySelectorAll('article.message[data-status="streaming"]').forEach(function (m) {
      evt.detail.socketWrapper.send(JSON.stringify({ action: "attach", message_id: m.dataset.messageId }));
      setStreaming(true, m.dataset.messageId);
    });
  });

  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (evt.key === "Enter" && !evt.shiftKey && t && t.id === "chat-input") {
      evt.preventDefault();
      if (!streaming) $("#chat-form").requestSubmit();
    } else if (evt.key === "Escape" && streaming) {
      var stop = $("#stop-button");
      if (stop && !stop.hidden && stop.dataset.messageId) { evt.preventDefault(); stop.click(); }
    }
  });

  // Phones: the conversation list is a drawer.
  function setDrawer(open) {
    var layout = $(".layout"), toggle = $("#drawer-toggle");
    if (!layout || !toggle) return;
    layout.classList.toggle("drawer-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { var first = $("#sidebar a, #sidebar input"); if (first) first.focus(); }
  }
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && $(".layout.drawer-open")) setDrawer(false);
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (t && t.id === "drawer-toggle") { setDrawer(!$(".layout.drawer-open")); return; }
    if (t && t.classList.contains("edit-toggle")) {
      var form = document.getElementById(t.dataset.target);
      if (form) { form.hidden = !form.hidden; var ta = form.querySelector("textarea"); if (ta) ta.focus(); }
    }
  });

  function updateCounter() {
    var c = $("#char-counter"), input = $("#chat-input");
    if (!c || !input) return;
    var max = parseInt(c.dataset.max, 10), n = input.value.length;
    c.textContent = n > max * 0.8 ? n.toLocaleString() + " / " + max.toLocaleString() : "";
    c.classList.toggle("over", n > max);
  }
  document.addEventListener("input", function (evt) { if (evt.target.id === "chat-input") updateCounter(); });
  document.addEventListener("DOMContentLoaded", scrollDown);
})();
