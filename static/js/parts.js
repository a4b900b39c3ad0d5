// Chimera: the Copy button of code blocks (chat/highlight.py). The raw code is in the block's
// hidden <textarea class="code-raw">, so what is copied is exactly what was written.
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
    var button = evt.target.closest && evt.target.closest(".copy-code");
    if (!button) return;
    var block = button.closest(".code-block");
    var raw = block && block.querySelector("textarea.code-raw");
    var pre = block && block.querySelector("pre");
    var text = raw ? raw.value : pre ? pre.textContent : "";
    copy(text).then(
      function () { button.textContent = "Copied"; button.dataset.copied = "true"; },
      function () { button.textContent = "Copy failed"; button.dataset.copied = "false"; }
    ).then(function () {
      setTimeout(function () { button.textContent = "Copy"; delete button.dataset.copied; }, 2000);
    });
  });
})();
