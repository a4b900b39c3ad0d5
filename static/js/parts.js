// Chimera: the Copy buttons of code blocks (chat/highlight.py) and of messages. The raw text is in a
// hidden <textarea> beside them, so what is copied is exactly what was written.
(function () {
  "use strict";

  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    var ok = document.execCommand("copy");
    ta.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest(".copy-code, .copy-message");
    if (!button) return;
    var text;
    if (button.classList.contains("copy-message")) {
      // The message as written (Markdown for answers), from its hidden <textarea class="message-raw">.
      var raw0 = button.parentNode.querySelector("textarea.message-raw");
      text = raw0 ? raw0.value : "";
    } else {
      var block = button.closest(".code-block");
      var raw = block && block.querySelector("textarea.code-raw");
      var pre = block && block.querySelector("pre");
      text = raw ? raw.value : pre ? pre.textContent : "";
    }
    copy(text).then(
      function () { button.textContent = "Copied"; button.dataset.copied = "true"; },
      function () { button.textContent = "Copy failed"; button.dataset.copied = "false"; }
    ).then(function () {
      setTimeout(function () { button.textContent = "Copy"; delete button.dataset.copied; }, 2000);
    });
  });
})();
