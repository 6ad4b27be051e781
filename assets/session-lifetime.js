/*
 * session-lifetime.js: the browser side of tower-session-lifetime.
 *
 * Warns before the session's idle deadline ("Your session is about to
 * expire", with Continue and Log out) and before its absolute deadline, and
 * says so when the session has ended, with a sign-in link. Plain JavaScript,
 * no build step, no dependencies. Include it on your pages:
 *
 *   <script src="/session-lifetime.js" data-status-url="/session/status"
 *           data-logout-url="/logout" data-login-url="/login" defer></script>
 *
 * Settings (data-* attributes on the script tag, or SessionLifetime.start):
 *   data-status-url     the layer's status endpoint: GET reports the deadlines
 *                       without counting as activity (default /session/status)
 *   data-keepalive-url  what Continue POSTs to, which counts as activity
 *                       (default: the status URL)
 *   data-logout-url     what Log out POSTs a form to (default /logout)
 *   data-login-url      the sign-in link once the session ended (default /)
 *   data-warn-seconds   how long before a deadline the dialog shows (default 60)
 *   data-watch-fetch    "on": learn the deadlines from the Session-Idle-Expires
 *                       and Session-Expires headers of the page's own fetches
 *   data-start          "manual": do not start until SessionLifetime.start()
 *
 * Tabs of one origin share what they learn through BroadcastChannel (or
 * storage events where it is missing): activity in any tab moves every
 * tab's deadline. Before it says a session ended, a tab asks the server,
 * since a request it did not see may have kept the session alive.
 *
 * The dialog is #session-lifetime-dialog, with data-kind "idle", "absolute"
 * or "ended"; its parts have classes starting session-lifetime- to style.
 */
(function () {
  "use strict";

  var CHANNEL = "tower-session-lifetime";
  var IDLE_HEADER = "Session-Idle-Expires";
  var ABSOLUTE_HEADER = "Session-Expires";
  // setTimeout overflows past 2^31 ms; long waits are taken in steps.
  var MAX_WAIT_MS = 60 * 60 * 1000;
  // How long to wait before asking again when the server could not answer.
  var RETRY_MS = 5000;

  var script = document.currentScript;
  var data = (script && script.dataset) || {};

  var settings = {
    statusUrl: data.statusUrl || "/session/status",
    keepaliveUrl: data.keepaliveUrl || null,
    logoutUrl: data.logoutUrl || "/logout",
    loginUrl: data.loginUrl || "/",
    warnSeconds: seconds(data.warnSeconds, 60),
    watchFetch: data.watchFetch === "on"
  };

  // What this tab knows: the deadlines on its own clock (ms), and when the
  // server said so (ms, this tab's clock: when the request was sent). The
  // newest observation wins, since activity only moves the idle deadline
  // forward and an end is final for that session; an answer that was on
  // its way while a newer request went out does not undo what that one
  // learned.
  var known = null;
  // This tab's clock minus the server's (ms), from the last status answer,
  // at its smallest.
  var clockOffset = 0;
  // Whether this page has seen a live session: a visitor's page stays quiet.
  var seenLive = false;
  // When the session was seen to end (ms), or null while it lives.
  var endedAt = null;
  var absoluteDismissed = false;
  var lateChecks = 0;
  var timer = null;
  var ticker = null;
  var channel = null;
  var started = false;
  var dialog = null;

  function seconds(value, otherwise) {
    var number = Number(value);
    return value !== undefined && value !== "" && isFinite(number) && number >= 0
      ? number
      : otherwise;
  }

  // ---------------------------------------------------------------------
  // What the server says

  // Deadlines in the server's Unix seconds, on this tab's clock.
  function observation(idle, absolute, at) {
    return {
      idle: idle * 1000 + clockOffset,
      absolute: absolute === null ? null : absolute * 1000 + clockOffset,
      at: at
    };
  }

  // A status answer to a request sent at `sentAt`.
  function fromStatus(body, sentAt) {
    if (!body || typeof body.idle_expires_at !== "number" || typeof body.now !== "number") {
      return null;
    }
    // `now` is rounded down to the second: the server's clock was up to a
    // second later. Taking the latest it can have been puts this tab's
    // deadlines early rather than late, as the rounded-down deadlines are.
    clockOffset = Date.now() - (body.now + 1) * 1000;
    var absolute = typeof body.expires_at === "number" ? body.expires_at : null;
    return observation(body.idle_expires_at, absolute, sentAt);
  }

  // The deadline headers of any response. Its `Date` says when the server
  // answered, so a response from a cache counts as old, as it is.
  function fromHeaders(headers, sentAt) {
    var idle = Number(headers.get(IDLE_HEADER));
    if (!headers.get(IDLE_HEADER) || !isFinite(idle)) {
      return null;
    }
    var absoluteHeader = headers.get(ABSOLUTE_HEADER);
    var absolute = absoluteHeader ? Number(absoluteHeader) : null;
    var date = Date.parse(headers.get("Date") || "");
    // `Date` has whole seconds: the answer may be up to one second newer.
    var at = isFinite(date) ? Math.min(date + clockOffset, sentAt) : sentAt;
    return observation(idle, isFinite(absolute) ? absolute : null, at);
  }

  // Asks the status endpoint: "live", "ended" or "unknown" (the server
  // could not say). A GET is not activity; a POST (Continue) is.
  function ask(method) {
    var url = method === "POST" ? settings.keepaliveUrl || settings.statusUrl : settings.statusUrl;
    var sentAt = Date.now();
    return originalFetch(url, {
      method: method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      if (response.status === 401) {
        // Another tab hears of it only if this one had a session to lose.
        ended(seenLive, !seenLive);
        return "ended";
      }
      if (!response.ok) {
        return "unknown";
      }
      return response.json().catch(function () {
        return null;
      }).then(function (body) {
        var next = fromStatus(body, sentAt) || fromHeaders(response.headers, sentAt);
        if (next) {
          learn(next, true);
          return "live";
        }
        // A keep-alive URL of the app's own, without the status JSON or
        // the deadline headers: it was activity; ask for the deadlines.
        return method === "POST" ? ask("GET") : "unknown";
      });
    }).catch(function () {
      return "unknown";
    });
  }

  function learn(next, share) {
    if (known && next.at < known.at) {
      return;
    }
    if (endedAt !== null && next.at <= endedAt) {
      return;
    }
    if (!known || known.absolute !== next.absolute) {
      // Another session (signed in again), or a shortened limit.
      absoluteDismissed = false;
    }
    known = next;
    seenLive = true;
    endedAt = null;
    if (share) {
      broadcast({ type: "deadlines", idle: next.idle, absolute: next.absolute, at: next.at });
    }
    schedule();
  }

  // The session is over: say so, unless `quietly` (a visitor's page, or a
  // logout on its way to the next page).
  function ended(share, quietly) {
    if (endedAt !== null) {
      return;
    }
    endedAt = Date.now();
    clearTimeout(timer);
    known = null;
    if (share) {
      broadcast({ type: "ended", at: endedAt });
    }
    if (quietly) {
      hide();
    } else {
      show("ended");
    }
  }

  // ---------------------------------------------------------------------
  // When to act

  function end(deadlines) {
    return deadlines.absolute === null ? deadlines.idle : Math.min(deadlines.idle, deadlines.absolute);
  }

  function kindOf(deadlines) {
    return deadlines.absolute !== null && deadlines.absolute <= deadlines.idle ? "absolute" : "idle";
  }

  function wait(action, ms) {
    clearTimeout(timer);
    timer = setTimeout(action, Math.max(0, Math.min(ms, MAX_WAIT_MS)));
  }

  function schedule() {
    clearTimeout(timer);
    if (endedAt !== null || !known) {
      return;
    }
    var now = Date.now();
    var deadline = end(known);
    var warnAt = deadline - settings.warnSeconds * 1000;
    if (now < warnAt) {
      lateChecks = 0;
      hide();
      wait(function () { if (Date.now() >= warnAt) { beforeWarning(); } else { schedule(); } }, warnAt - now);
      return;
    }
    var kind = kindOf(known);
    if (kind === "idle" || !absoluteDismissed) {
      show(kind);
    }
    if (now < deadline) {
      lateChecks = 0;
      wait(function () { if (Date.now() >= deadline) { atDeadline(); } else { schedule(); } }, deadline - now);
    } else {
      // The server said it lives, though its deadline (in whole seconds)
      // has passed here: ask again in a second.
      wait(atDeadline, lateChecks === 0 ? 0 : 1000);
      lateChecks += 1;
    }
  }

  // The warning is due: another tab (or a request this page did not see)
  // may have moved the deadline, so ask before showing it.
  function beforeWarning() {
    ask("GET").then(function (outcome) {
      if (outcome === "unknown") {
        schedule();
      }
    });
  }

  // The deadline is here: the session ended only if the server says so.
  function atDeadline() {
    ask("GET").then(function (outcome) {
      if (outcome === "unknown") {
        wait(atDeadline, RETRY_MS);
      }
    });
  }

  // ---------------------------------------------------------------------
  // The dialog

  var TEXT = {
    idle: {
      title: "Your session is about to expire",
      message: function (left) { return "You will be signed out in " + left + " because of inactivity."; }
    },
    absolute: {
      title: "Your session will end soon",
      message: function (left) {
        return "For your security, your session ends in " + left +
          ". Save your work: you will need to sign in again.";
      }
    },
    ended: {
      title: "Your session has ended",
      message: function () { return "Sign in again to continue."; }
    }
  };

  var STYLE =
    ".session-lifetime-backdrop{position:fixed;inset:0;z-index:2147483647;display:flex;" +
    "align-items:center;justify-content:center;background:rgba(0,0,0,.45);font:16px/1.5 system-ui,sans-serif}" +
    ".session-lifetime-backdrop[hidden]{display:none}" +
    ".session-lifetime-box{background:#fff;color:#1b1b1b;max-width:26rem;margin:1rem;padding:1.5rem 1.75rem;" +
    "border-radius:.75rem;box-shadow:0 10px 40px rgba(0,0,0,.3)}" +
    ".session-lifetime-box h2{margin:0 0 .5rem;font-size:1.25rem}" +
    ".session-lifetime-box p{margin:0 0 1.25rem}" +
    ".session-lifetime-actions{display:flex;gap:.75rem;justify-content:flex-end;align-items:center}" +
    ".session-lifetime-actions button,.session-lifetime-actions a{font:inherit;padding:.45rem 1rem;" +
    "border-radius:.4rem;border:1px solid #1f5fbf;cursor:pointer;text-decoration:none}" +
    ".session-lifetime-primary{background:#1f5fbf;color:#fff}" +
    ".session-lifetime-secondary{background:#fff;color:#1f5fbf}" +
    ".session-lifetime-actions [hidden]{display:none}";

  function build() {
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);

    var root = document.createElement("div");
    root.id = "session-lifetime-dialog";
    root.className = "session-lifetime-backdrop";
    root.hidden = true;
    root.setAttribute("role", "alertdialog");
    root.setAttribute("aria-modal", "true");
    root.setAttribute("aria-labelledby", "session-lifetime-title");
    root.setAttribute("aria-describedby", "session-lifetime-message");

    var box = element("div", "session-lifetime-box");
    var title = element("h2", "session-lifetime-title");
    title.id = "session-lifetime-title";
    var message = element("p", "session-lifetime-message");
    message.id = "session-lifetime-message";
    message.setAttribute("aria-live", "polite");
    var actions = element("div", "session-lifetime-actions");
    var keep = button("continue", "Continue", "session-lifetime-primary", onContinue);
    var logout = button("logout", "Log out", "session-lifetime-secondary", onLogout);
    var dismiss = button("dismiss", "OK", "session-lifetime-primary", onDismiss);
    var signIn = element("a", "session-lifetime-primary");
    signIn.setAttribute("data-action", "sign-in");
    signIn.textContent = "Sign in again";
    signIn.href = settings.loginUrl;

    actions.append(logout, dismiss, keep, signIn);
    box.append(title, message, actions);
    root.append(box);
    document.body.appendChild(root);
    return { root: root, title: title, message: message, keep: keep, logout: logout, dismiss: dismiss, signIn: signIn };
  }

  function element(tag, className) {
    var node = document.createElement(tag);
    node.className = className;
    return node;
  }

  function button(action, label, className, onClick) {
    var node = element("button", className);
    node.type = "button";
    node.setAttribute("data-action", action);
    node.textContent = label;
    node.addEventListener("click", onClick);
    return node;
  }

  function show(kind) {
    if (!document.body) {
      return;
    }
    dialog = dialog || build();
    var wasShown = !dialog.root.hidden && dialog.root.getAttribute("data-kind") === kind;
    dialog.root.setAttribute("data-kind", kind);
    dialog.title.textContent = TEXT[kind].title;
    dialog.keep.hidden = kind !== "idle";
    dialog.logout.hidden = kind === "ended";
    dialog.dismiss.hidden = kind !== "absolute";
    dialog.signIn.hidden = kind !== "ended";
    dialog.keep.disabled = false;
    dialog.logout.disabled = false;
    dialog.root.hidden = false;
    clearInterval(ticker);
    if (kind === "ended") {
      dialog.message.textContent = TEXT.ended.message();
      if (!wasShown) {
        dialog.signIn.focus();
      }
      return;
    }
    tick();
    ticker = setInterval(tick, 1000);
    if (!wasShown) {
      (kind === "idle" ? dialog.keep : dialog.dismiss).focus();
    }
  }

  function tick() {
    if (!known || !dialog) {
      return;
    }
    var kind = dialog.root.getAttribute("data-kind");
    var left = Math.max(0, Math.ceil((end(known) - Date.now()) / 1000));
    var minutes = Math.floor(left / 60);
    var rest = left % 60;
    dialog.message.textContent = TEXT[kind].message(minutes + ":" + (rest < 10 ? "0" : "") + rest);
  }

  function hide() {
    clearInterval(ticker);
    if (dialog) {
      dialog.root.hidden = true;
    }
  }

  function onContinue() {
    dialog.keep.disabled = true;
    ask("POST").then(function (outcome) {
      if (outcome === "unknown") {
        dialog.keep.disabled = false;
        dialog.message.textContent = "The server could not be reached. Please try again.";
      }
    });
  }

  function onLogout() {
    dialog.logout.disabled = true;
    ended(true, true);
    var form = document.createElement("form");
    form.method = "post";
    form.action = settings.logoutUrl;
    form.hidden = true;
    document.body.appendChild(form);
    form.submit();
  }

  function onDismiss() {
    absoluteDismissed = true;
    hide();
  }

  // ---------------------------------------------------------------------
  // Other tabs

  function broadcast(message) {
    if (channel) {
      channel.postMessage(message);
      return;
    }
    try {
      // A fresh nonce, so that the same message twice is still an event.
      message.nonce = Math.random();
      localStorage.setItem(CHANNEL, JSON.stringify(message));
    } catch (ignored) {
      // No storage (a private window): this tab alone, then.
    }
  }

  function receive(message) {
    if (!message || typeof message.at !== "number") {
      return;
    }
    if (message.type === "deadlines" && typeof message.idle === "number") {
      var absolute = typeof message.absolute === "number" ? message.absolute : null;
      learn({ idle: message.idle, absolute: absolute, at: message.at }, false);
    } else if (message.type === "ended" && known && message.at >= known.at) {
      // Another tab saw a 401 or is logging out: believe the server only.
      // A logout takes a moment to arrive, so ask twice.
      confirmEnd(1000, function () { confirmEnd(3000); });
    }
  }

  function confirmEnd(delay, otherwise) {
    setTimeout(function () {
      ask("GET").then(function (outcome) {
        if (outcome !== "ended" && otherwise) {
          otherwise();
        }
      });
    }, delay);
  }

  function listen() {
    if (typeof BroadcastChannel === "function") {
      channel = new BroadcastChannel(CHANNEL);
      channel.onmessage = function (event) { receive(event.data); };
      return;
    }
    window.addEventListener("storage", function (event) {
      if (event.key === CHANNEL && event.newValue) {
        try {
          receive(JSON.parse(event.newValue));
        } catch (ignored) {
          // Not ours.
        }
      }
    });
  }

  // ---------------------------------------------------------------------
  // Starting

  var originalFetch = window.fetch.bind(window);

  function watchFetch() {
    window.fetch = function () {
      var sentAt = Date.now();
      return originalFetch.apply(window, arguments).then(function (response) {
        observeSent(response, sentAt);
        return response;
      });
    };
  }

  // Learns the deadlines from a response's deadline headers, if it has them.
  function observe(response) {
    return observeSent(response, Date.now());
  }

  function observeSent(response, sentAt) {
    var next = response && response.headers ? fromHeaders(response.headers, sentAt) : null;
    if (next) {
      learn(next, true);
    }
    return response;
  }

  function start(options) {
    if (started) {
      return;
    }
    started = true;
    for (var name in options || {}) {
      if (Object.prototype.hasOwnProperty.call(settings, name)) {
        settings[name] = options[name];
      }
    }
    listen();
    if (settings.watchFetch) {
      watchFetch();
    }
    // Timers of hidden tabs are slowed down; look again on coming back.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && seenLive) {
        ask("GET");
      }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        ask("GET");
      }
    });
    ask("GET");
  }

  window.SessionLifetime = {
    start: start,
    observe: observe,
    // What this tab knows, for a page's own display: deadlines in ms on this
    // tab's clock, or null.
    deadlines: function () {
      return known ? { idle: known.idle, absolute: known.absolute } : null;
    },
    settings: settings
  };

  if (data.start !== "manual") {
    start();
  }
})();
