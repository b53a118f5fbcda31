// sre-agent's pages: the list's live rows, an investigation's live status, the chat
// panel and the feedback form. No framework, nothing from elsewhere. Rows and sections
// come rendered (and escaped) by the service; the model's text is only ever set as
// textContent, never as HTML.
"use strict";

(function () {
  const FINAL = ["completed", "degraded", "failed", "cancelled"];

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = String(html || "").trim();
    return template.content.firstElementChild;
  }

  function ageText(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "?";
    const s = Math.max(0, Math.floor((Date.now() - then) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }

  function refreshAges(root) {
    for (const time of root.querySelectorAll("time[datetime]")) {
      time.textContent = ageText(time.getAttribute("datetime"));
    }
  }

  function createdOf(row) {
    const time = row.querySelector("time[datetime]");
    return time ? time.getAttribute("datetime") : "";
  }

  // --- the list: rows replaced or added as the feed sends them ---------------------
  function liveList(table) {
    const body = table.tBodies[0];
    const empty = document.getElementById("empty");
    const firstPage = table.dataset.firstPage === "true";
    const pageSize = parseInt(table.dataset.pageSize, 10) || 50;
    const source = new EventSource(table.dataset.feed);

    function place(row) {
      // Newest first, as the list is ordered: before the first row that is older.
      const created = createdOf(row);
      for (const other of body.rows) {
        if (createdOf(other) < created) {
          body.insertBefore(row, other);
          return true;
        }
      }
      if (document.getElementById("older")) return false; // it belongs on a later page
      body.appendChild(row);
      return true;
    }

    // The first page stays at its size: the rows pushed off its end are behind "Older",
    // which starts right after the last row kept (so none is skipped).
    function trim() {
      if (body.rows.length <= pageSize) return;
      while (body.rows.length > pageSize) body.rows[body.rows.length - 1].remove();
      const last = body.rows[body.rows.length - 1];
      const base = table.dataset.olderBase || "/?";
      const href = base + (base.endsWith("?") ? "" : "&") + "before=" +
        encodeURIComponent(last.id.replace(/^inv-/, ""));
      let older = document.getElementById("older");
      if (!older) {
        older = element("a", "", "Older");
        older.id = "older";
        older.rel = "next";
        const nav = document.querySelector("nav.pages");
        if (nav) nav.appendChild(older);
        else table.after(older);
      }
      older.href = href;
    }

    source.addEventListener("investigation", function (event) {
      const data = JSON.parse(event.data);
      const row = fragment(data.html);
      if (!row || row.tagName !== "TR") return;
      const old = document.getElementById("inv-" + data.id);
      if (old) {
        old.replaceWith(row);
      } else if (firstPage && place(row)) {
        row.classList.add("fresh");
        if (empty) empty.hidden = true;
        trim();
      }
    });
    source.addEventListener("gone", function (event) {
      const data = JSON.parse(event.data);
      const old = document.getElementById("inv-" + data.id);
      if (old) old.remove();
      if (empty && body.rows.length === 0) empty.hidden = false;
    });
    source.addEventListener("reset", function () {
      source.close();
      window.location.reload();
    });
    window.setInterval(function () { refreshAges(table); }, 30000);
  }

  // --- an investigation still queued or running: its status, then the report -------
  function liveStatus(article) {
    const status = document.getElementById("live-status");
    const state = status ? status.querySelector(".state") : null;
    const since = status ? status.querySelector("time[datetime]") : null;
    const source = new EventSource(article.dataset.feed);
    function reload() {
      source.close();
      window.location.reload();
    }
    function tick() {
      if (since) since.textContent = ageText(since.getAttribute("datetime"));
    }
    source.addEventListener("investigation", function (event) {
      const data = JSON.parse(event.data);
      if (data.id !== article.dataset.id) return;
      if (FINAL.includes(data.status)) return reload();
      if (data.status !== article.dataset.status && since) {
        since.setAttribute("datetime", new Date().toISOString()); // queued -> running: now
      }
      if (state) state.textContent = data.status;
      if (status) status.className = "badge live status-" + data.status;
      article.dataset.status = data.status;
      tick();
    });
    source.addEventListener("reset", reload);
    window.setInterval(tick, 1000);
  }

  // --- the chat panel ---------------------------------------------------------------
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function message(log, role, text) {
    const node = element("div", "msg " + role);
    node.appendChild(element("div", "text", text || ""));
    log.appendChild(node);
    node.scrollIntoView({ block: "nearest" });
    return node;
  }

  // The session's CSRF token (the page's <meta>), sent with every POST of ours; "" off a
  // session (a proxy's user has one too; anonymous needs none).
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  // What the service said when it refused a question: its own text, with when to ask
  // again from Retry-After only when the text does not say it already.
  async function errorOf(response) {
    let text = "";
    try {
      const body = await response.json();
      text = body && body.error ? String(body.error) : "";
    } catch (_) {
      text = "";
    }
    text = text || "the service answered " + response.status;
    const retry = response.headers.get("Retry-After");
    if (response.status === 429 && retry && !/again in \d+\s*s\b/i.test(text)) {
      text += " (ask again in " + retry + " s)";
    }
    return text;
  }

  // The short line a person reads first; the service's own words follow in small type.
  const MODEL_DOWN = "The model server did not answer; the report above is unaffected.";
  function leadOf(status, text) {
    if (status === 503 || /^the model server failed/i.test(text)) return MODEL_DOWN;
    if (status === 429) return "Not sent: ask again shortly.";
    return null;
  }

  function dispatch(frame, on) {
    let kind = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch (_) {
      return;
    }
    on(kind, parsed);
  }

  async function readEvents(response, on) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n|\r(?!$)/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end), on);
        buffer = buffer.slice(end + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer, on);
  }

  function chat(section) {
    const form = document.getElementById("chat-form");
    if (!form) return;
    const log = document.getElementById("chat-log");
    const status = document.getElementById("chat-status");
    const button = form.querySelector('button[type="submit"]');
    const csrf = csrfToken();
    form.hidden = false;

    function failed(answer, text, status) {
      if (answer && !answer.querySelector(".text").textContent && !answer.querySelector(".tool-call")) {
        answer.remove();
      } else if (answer) {
        answer.classList.add("done");
      }
      const lead = leadOf(status, text);
      const node = message(log, "error", lead || text);
      if (lead) {
        node.appendChild(element("div", "detail", text));
        node.scrollIntoView({ block: "nearest" });
      }
    }

    // A question the service refused, or one whose turn it dropped (a failed answer is
    // not kept): shown apart, so asking it again does not read as asking it twice.
    function unsent(asked, note) {
      asked.classList.add("unsent");
      asked.appendChild(element("div", "unsent-note", note));
    }

    async function ask(question) {
      const asked = message(log, "user", question);
      const answer = message(log, "assistant");
      const text = answer.querySelector(".text");
      let lastTool = null;
      let ended = false;
      const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
      if (csrf) headers["X-CSRF-Token"] = csrf;
      const response = await fetch(section.dataset.url, {
        method: "POST",
        headers: headers,
        body: JSON.stringify({ message: question }),
        credentials: "same-origin",
      });
      if (!response.ok) {
        unsent(asked, "not sent");
        failed(answer, await errorOf(response), response.status);
        return false;
      }
      form.elements.message.value = "";
      await readEvents(response, function (kind, data) {
        if (kind === "token") {
          text.textContent += data.text || "";
        } else if (kind === "tool_call") {
          lastTool = element("div", "tool-call");
          lastTool.appendChild(element("span", "tool-name", String(data.name)));
          lastTool.appendChild(document.createTextNode(" "));
          lastTool.appendChild(element("code", "", JSON.stringify(data.args || {})));
          answer.insertBefore(lastTool, text);
        } else if (kind === "tool_result") {
          if (lastTool) lastTool.appendChild(element("span", "tool-status", " → " + data.status));
        } else if (kind === "done") {
          if (data.answer) text.textContent = data.answer;
          answer.classList.add("done");
          ended = true;
        } else if (kind === "error") {
          unsent(asked, "not kept: no answer");
          if (!form.elements.message.value) form.elements.message.value = question; // again?
          failed(answer, String(data.error || "the answer failed"));
          ended = true;
        }
        answer.scrollIntoView({ block: "nearest" });
      });
      if (!ended) failed(answer, "the answer was cut off (the connection ended); ask again");
      return true;
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const question = form.elements.message.value.trim();
      if (!question || button.disabled) return;
      button.disabled = true;
      status.textContent = "answering…";
      try {
        await ask(question);
      } catch (error) {
        message(log, "error", "the request failed: " + (error && error.message ? error.message : error));
      } finally {
        button.disabled = false;
        status.textContent = "";
      }
    });
    form.elements.message.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // --- feedback: a verdict posted as JSON, then the section as the service renders it --
  // The page again, for its feedback section and the verdict in its head; a whole reload
  // when the section is not in what came back.
  async function refreshFeedback(section) {
    const response = await fetch(window.location.pathname, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
      cache: "no-store",
    });
    const doc = response.ok
      ? new DOMParser().parseFromString(await response.text(), "text/html")
      : null;
    const fresh = doc ? doc.getElementById("feedback") : null;
    if (!fresh) {
      window.location.reload();
      return;
    }
    const verdict = doc.getElementById("verdict");
    const shown = document.getElementById("verdict");
    if (verdict && shown) {
      shown.replaceWith(document.adoptNode(verdict));
    } else if (verdict) {
      const meta = document.querySelector(".page-head .meta");
      if (meta) meta.insertBefore(document.adoptNode(verdict), meta.children[1] || null);
    }
    const replaced = document.adoptNode(fresh);
    section.replaceWith(replaced);
    feedback(replaced, "Thank you: your verdict is kept.");
  }

  function feedback(section, said) {
    const form = section.querySelector("#feedback-form");
    if (!form) return;
    const status = form.querySelector("#feedback-status");
    const buttons = form.querySelectorAll('button[name="verdict"]');
    form.hidden = false;
    if (said) status.textContent = said;
    // Enter in the cause field gives no verdict: the buttons do.
    form.elements.cause.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault();
    });

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = event.submitter;
      if (!button || button.name !== "verdict" || button.disabled) return;
      const body = { verdict: button.value };
      const cause = form.elements.cause.value.trim();
      const note = form.elements.note.value.trim();
      if (cause) body.cause = cause;
      if (note) body.note = note;
      const headers = { "Content-Type": "application/json", Accept: "application/json" };
      const csrf = csrfToken();
      if (csrf) headers["X-CSRF-Token"] = csrf;
      for (const other of buttons) other.disabled = true;
      status.classList.remove("failed");
      status.textContent = "sending…";
      let kept = false;
      try {
        const response = await fetch(form.dataset.url, {
          method: "POST",
          headers: headers,
          body: JSON.stringify(body),
          credentials: "same-origin",
        });
        if (!response.ok) {
          status.classList.add("failed");
          status.textContent = "Not kept: " + (await errorOf(response));
          return;
        }
        kept = true;
        status.textContent = "kept; reading it back…";
        await refreshFeedback(section);
      } catch (error) {
        if (kept) return window.location.reload(); // kept: the page shows it
        status.classList.add("failed");
        status.textContent = "the request failed: " + (error && error.message ? error.message : error);
      } finally {
        for (const other of buttons) other.disabled = false;
      }
    });
  }

  // --- the filter form: empty fields stay out of the URL (/?namespace=shop) -------
  function tidyFilters(form) {
    form.addEventListener("submit", function () {
      for (const input of form.querySelectorAll("input[name], select[name]")) {
        if (!input.value) input.disabled = true;
      }
      // Back to this page from the next one: the fields must be usable again.
      window.addEventListener("pageshow", function () {
        for (const input of form.querySelectorAll("[disabled]")) input.disabled = false;
      });
    });
  }

  // On a wide screen the filters are open; on a phone folded unless one is set.
  function unfoldFilters(box) {
    if (window.matchMedia && window.matchMedia("(min-width: 641px)").matches) box.open = true;
  }

  function start() {
    const filters = document.getElementById("filters");
    if (filters) tidyFilters(filters);
    const box = document.getElementById("filter-box");
    if (box) unfoldFilters(box);
    const table = document.getElementById("investigations");
    if (table && table.dataset.feed && window.EventSource) liveList(table);
    const article = document.getElementById("investigation");
    if (article && article.dataset.feed && window.EventSource) liveStatus(article);
    const section = document.getElementById("chat");
    if (section && window.fetch && window.ReadableStream) chat(section);
    const judged = document.getElementById("feedback");
    if (judged && window.fetch && window.DOMParser) feedback(judged);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
