/* The kiosk page: reads the kiosk feed with the screen's token, redraws on change, rotates featured campaigns.
 *
 * The token arrives once in the URL fragment (/kiosk#token=...), which browsers never send to the server; it is
 * kept in localStorage and the fragment is wiped at once. The feed is polled with If-None-Match, so an unchanged
 * feed costs a 304 and no redraw. Merchant text is only ever set as textContent. */
(function () {
  "use strict";

  var root = document.getElementById("kiosk");
  if (!root) { return; }
  var labels = JSON.parse(document.getElementById("kiosk-labels").textContent);
  var locale = root.dataset.locale;
  var numberFormat = new Intl.NumberFormat(locale === "zh" ? "zh-CN" : "en");
  var tonnesFormat = new Intl.NumberFormat(locale === "zh" ? "zh-CN" : "en",
    {minimumFractionDigits: 1, maximumFractionDigits: 1});
  // Dates are written as on every page of the platform (core/templating.py): YYYY-MM-DD, the Asia/Shanghai day,
  // whatever the browser's locale would write (2026/12/2, 12/2/2026, ...).
  var dayParts = new Intl.DateTimeFormat("en-US", {year: "numeric", month: "2-digit", day: "2-digit",
                                                   timeZone: "Asia/Shanghai"});

  function endDate(text) {
    var parts = {};
    dayParts.formatToParts(new Date(text)).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day;
  }
  var TOKEN_KEY = "metropoints.kiosk.token";
  var pollMs = Number(root.dataset.pollSeconds) * 1000;
  var rotateMs = Number(root.dataset.rotateSeconds) * 1000;
  var idleMs = Number(root.dataset.idleSeconds) * 1000;

  var etag = null;
  var slides = [];
  var current = 0;
  var rotateTimer = null;
  var idleTimer = null;

  function byId(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function takeToken() {
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (match) {
      try { window.localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1])); } catch (e) { /* private mode */ }
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return decodeURIComponent(match[1]);
    }
    try { return window.localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function qrUrl(campaignId) {
    return root.dataset.qrUrl.replace(/\/0\.svg$/, "/" + campaignId + ".svg");
  }

  function qrImage(item, className) {
    var img = el("img", className);
    img.src = qrUrl(item.campaign_id);
    img.alt = labels.scan;
    img.loading = "lazy";
    img.decoding = "async";
    return img;
  }

  function stationLine(item) {
    var names = item.stores.map(function (s) { return s.name; });
    return names.slice(0, 3).join(" · ") + (names.length > 3 ? " …" : "");
  }

  function priceLine(item) {
    return numberFormat.format(item.point_price) + " " + labels.points;
  }

  function stockLine(item) {
    return labels.stock_left + " " + numberFormat.format(item.stock_left) + " · " + labels.until + " " +
      endDate(item.valid_until);
  }

  function slide(item) {
    var card = el("article", "kiosk-slide");
    card.dataset.campaignId = item.campaign_id;
    var text = el("div", "kiosk-slide-text");
    text.appendChild(el("p", "kiosk-merchant", item.merchant.name));
    text.appendChild(el("h3", "kiosk-slide-title", item.title));
    if (item.description) { text.appendChild(el("p", "kiosk-description", item.description)); }
    text.appendChild(el("p", "kiosk-price", priceLine(item)));
    text.appendChild(el("p", "kiosk-stock", stockLine(item)));
    text.appendChild(el("p", "kiosk-stores", stationLine(item)));
    card.appendChild(text);
    var code = el("figure", "kiosk-slide-qr");
    code.appendChild(qrImage(item, "kiosk-qr kiosk-qr-large"));
    code.appendChild(el("figcaption", null, labels.scan));
    card.appendChild(code);
    return card;
  }

  function tile(item) {
    var li = el("li", "kiosk-tile");
    li.dataset.campaignId = item.campaign_id;
    var text = el("div", "kiosk-tile-text");
    text.appendChild(el("p", "kiosk-merchant", item.merchant.name));
    text.appendChild(el("h3", "kiosk-tile-title", item.title));
    text.appendChild(el("p", "kiosk-price", priceLine(item)));
    text.appendChild(el("p", "kiosk-stock", stockLine(item)));
    li.appendChild(text);
    li.appendChild(qrImage(item, "kiosk-qr"));
    return li;
  }

  function show(index) {
    if (!slides.length) { return; }
    current = (index + slides.length) % slides.length;
    slides.forEach(function (node, i) { node.classList.toggle("is-current", i === current); });
    Array.prototype.forEach.call(byId("kiosk-dots").children, function (dot, i) {
      dot.setAttribute("aria-selected", i === current ? "true" : "false");
    });
  }

  function restartRotation() {
    if (rotateTimer) { window.clearInterval(rotateTimer); }
    rotateTimer = slides.length > 1 ? window.setInterval(function () { show(current + 1); }, rotateMs) : null;
  }

  function renderFeatured(items) {
    var box = byId("kiosk-slides");
    var dots = byId("kiosk-dots");
    var shownId = slides.length ? slides[current].dataset.campaignId : null;
    box.replaceChildren();
    dots.replaceChildren();
    slides = items.map(function (item, i) {
      var node = slide(item);
      box.appendChild(node);
      var dot = el("button", "kiosk-dot");
      dot.type = "button";
      dot.setAttribute("role", "tab");
      dot.setAttribute("aria-label", item.title);
      dot.addEventListener("click", function () { show(i); restartRotation(); });
      dots.appendChild(dot);
      return node;
    });
    var keep = slides.findIndex(function (node) { return node.dataset.campaignId === shownId; });
    show(keep >= 0 ? keep : 0);
    restartRotation();
  }

  // The campaigns last drawn, as JSON: a reply whose campaigns are the same (only the city's counter moved) updates
  // the counter and leaves the slides, their rotation and the grid alone.
  var drawnCampaigns = null;

  // The city's figures per green mode, in the feed's order (metro, bus, bike, walk): the modes with trips only.
  function renderModes(byMode) {
    var rows = Object.keys(byMode).filter(function (mode) { return byMode[mode].trips > 0; }).map(function (mode) {
      var figures = byMode[mode];
      var row = el("tr", "kiosk-mode");
      row.dataset.mode = mode;
      row.appendChild(el("th", null, labels["mode_" + mode] || mode));
      row.appendChild(el("td", null, tonnesFormat.format(figures.co2e_tonnes) + " " + labels.tonnes_short));
      row.appendChild(el("td", null, numberFormat.format(Math.round(figures.km)) + " " + labels.km));
      return row;
    });
    var body = byId("kiosk-modes-rows");
    body.replaceChildren.apply(body, rows);
    byId("kiosk-modes").hidden = rows.length === 0;
  }

  function render(feed) {
    var station = byId("kiosk-station");
    station.textContent = locale === "zh" ? feed.station.name_zh : feed.station.name_en;
    station.title = feed.station.station_id;
    byId("kiosk-co2").textContent = tonnesFormat.format(feed.city.co2e_tonnes_total);
    byId("kiosk-riders").textContent = numberFormat.format(feed.city.riders_total);
    byId("kiosk-points").textContent = numberFormat.format(feed.city.points_total);
    renderModes(feed.city.by_mode || {});
    var campaigns = JSON.stringify([feed.featured, feed.catalog]);
    if (campaigns === drawnCampaigns) { return; }
    drawnCampaigns = campaigns;
    // With nothing featured at this station, the newest campaigns take the featured spot.
    renderFeatured(feed.featured.length ? feed.featured : feed.catalog.slice(0, 5));
    var grid = byId("kiosk-grid");
    grid.replaceChildren.apply(grid, feed.catalog.map(tile));
    byId("kiosk-empty").hidden = feed.catalog.length > 0;
  }

  function setUp(needed) {
    byId("kiosk-setup").hidden = !needed;
  }

  function poll(token) {
    var headers = {"Authorization": "Bearer " + token, "Accept": "application/json"};
    if (etag) { headers["If-None-Match"] = etag; }
    return window.fetch(root.dataset.feedUrl, {headers: headers, cache: "no-store", credentials: "omit"})
      .then(function (reply) {
        byId("kiosk-offline").hidden = true;
        if (reply.status === 304) { return; }
        if (reply.status === 401 || reply.status === 403) {
          try { window.localStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
          setUp(true);
          return "stop";
        }
        if (!reply.ok) { throw new Error("feed " + reply.status); }
        etag = reply.headers.get("ETag");
        return reply.json().then(render);
      })
      .catch(function () { byId("kiosk-offline").hidden = false; });
  }

  function resetAfterIdle() {
    if (idleTimer) { window.clearTimeout(idleTimer); }
    idleTimer = window.setTimeout(function () {
      // The next visitor finds the screen as the first one did: Chinese, top of the catalogue.
      if (locale !== "zh") { window.location.assign(root.dataset.homeUrl); return; }
      byId("kiosk-grid").scrollTop = 0;
      window.scrollTo(0, 0);
    }, idleMs);
  }

  var token = takeToken();
  if (!token) { setUp(true); return; }
  ["pointerdown", "keydown", "scroll"].forEach(function (name) {
    document.addEventListener(name, resetAfterIdle, {passive: true, capture: true});
  });
  resetAfterIdle();

  function loop() {
    poll(token).then(function (outcome) {
      if (outcome !== "stop") { window.setTimeout(loop, pollMs); }
    });
  }
  loop();
}());
