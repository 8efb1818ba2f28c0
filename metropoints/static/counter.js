// The counter page: a USB scanner types into the focused field and presses Enter; the camera button uses the
// browser's BarcodeDetector; the number field takes the 12-digit counter code under the QR, written 4-4-4 as it is
// typed. Each code is checked at once and the result shown big and coloured. Without this script the forms post
// normally and the server renders the result.
(function () {
  "use strict";
  var form = document.getElementById("counter-form");
  if (!form) { return; }
  var input = document.getElementById("counter-code");
  var panel = document.getElementById("counter-result");
  var cameraButton = document.getElementById("counter-camera");
  var video = document.getElementById("counter-video");
  var numberForm = document.getElementById("counter-number-form");
  var number = document.getElementById("counter-number");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var busy = false;

  function tone(code) {
    if (code === "accepted") { return "ok"; }
    if (code === "expired" || code === "cancelled") { return "warn"; }
    return "bad";
  }

  function line(text) {
    var small = document.createElement("small");
    small.textContent = text;
    return small;
  }

  function show(reply) {
    panel.className = "counter-result " + tone(reply.code);
    panel.textContent = reply.message || reply.code;
    if (reply.title) { panel.appendChild(line(reply.title)); }
    if (reply.used_at_local) {
      var where = reply.store_name ? " " + panel.dataset.where + " " + reply.store_name : "";
      panel.appendChild(line(panel.dataset.when + " " + reply.used_at_local + where));
    }
  }

  function addToday(reply) {
    var body = document.getElementById("counter-today");
    if (!body) { return; }  // the first of the day: the list appears on the next load
    var row = document.createElement("tr");
    // The time as the server writes every time on its pages (core/templating.py), not the browser's own way.
    [reply.validated_at_local, reply.title, "#" + reply.coupon_id].forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    body.insertBefore(row, body.firstChild);
  }

  function check(code, field) {
    field = field || input;
    code = (code || "").trim();
    if (!code || busy) { return; }
    busy = true;
    var body = {code: code};
    if (form.dataset.storeId) { body.store_id = parseInt(form.dataset.storeId, 10); }
    fetch(form.dataset.validateUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json();
    }).then(function (reply) {
      show(reply);
      if (reply.code === "accepted") { addToday(reply); }
    }).catch(function () {
      panel.className = "counter-result bad";
      panel.textContent = panel.dataset.failed;
    }).then(function () {
      busy = false;
      field.value = "";
      field.focus();
    });
  }

  // The ASCII digits of a text, a Chinese input method's full-width ones included.
  function digitsOf(text) {
    return text.replace(/[\uFF10-\uFF19]/g, function (c) {
      return String.fromCharCode(c.charCodeAt(0) - 0xFEE0);
    }).replace(/\D/g, "");
  }

  // At most 12 digits, grouped 4-4-4 with dashes (the server ignores them). The caret stays after the same digit, so
  // a correction in the middle does not jump to the end.
  function groupDigits() {
    var caret = number.selectionStart === null ? number.value.length : number.selectionStart;
    var before = digitsOf(number.value.slice(0, caret)).length;
    var digits = digitsOf(number.value).slice(0, 12);
    var grouped = digits.replace(/(\d{4})(?=\d)/g, "$1-");
    if (grouped === number.value) { return; }
    number.value = grouped;
    var at = Math.min(before, digits.length);
    var position = at + Math.floor(Math.max(at - 1, 0) / 4);
    if (at > 0 && at % 4 === 0 && at < digits.length) { position += 1; }
    number.setSelectionRange(position, position);
  }

  if (numberForm && number) {
    number.addEventListener("input", groupDigits);
    numberForm.addEventListener("submit", function (event) {
      event.preventDefault();
      check(number.value, number);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    check(input.value);
  });

  // The camera: only where the browser can read QR codes itself (no library, no CDN).
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return;
  }
  cameraButton.hidden = false;
  var stream = null;
  var lastCode = "";

  function stop() {
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
    stream = null;
    video.hidden = true;
    input.focus();
  }

  cameraButton.addEventListener("click", function () {
    if (stream) { stop(); return; }
    var detector = new window.BarcodeDetector({formats: ["qr_code"]});
    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}}).then(function (media) {
      stream = media;
      video.srcObject = media;
      video.hidden = false;
      return video.play();
    }).then(function scan() {
      if (!stream) { return; }
      detector.detect(video).then(function (codes) {
        var value = codes.length ? codes[0].rawValue : "";
        if (value && value !== lastCode) {
          lastCode = value;  // the same QR held in front of the camera is checked once
          setTimeout(function () { lastCode = ""; }, 3000);
          check(value);
        }
      }).catch(function () { /* a frame that could not be read: try the next */ }).then(function () {
        if (stream) { setTimeout(scan, 250); }
      });
    }).catch(function () {
      stop();
    });
  });
}());
