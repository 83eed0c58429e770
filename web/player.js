/* player.js — the castgate player page (SPEC §7).
 *
 * Plays the room's HLS with hls.js (low-latency mode) or native HLS (Safari),
 * follows the room's events (API-10) over Server-Sent Events, and keeps the
 * classroom state
 *
 *     idle → connecting → connected → reconnecting → ended | kicked | error
 *
 * Every state change and every event is posted to the parent window:
 *     {type: 'castgate', state, event, roomId}
 * (event is null for a bare state change; events of API-10 keep their JSON;
 * the page adds {type: 'connected'|'disconnected', source: 'player'} when the
 * picture starts or stops). The parent may send {type: 'castgate-command',
 * command: 'play'|'pause'|'mute'|'unmute'}.
 *
 * Rules: ended = the playlist has EXT-X-ENDLIST (once played out), or a
 * class_ended / video_room_state→ENDED event, or 410 (swept). kicked = our
 * token was revoked: a 401/403 after we were connected, a 403
 * TOKEN_REVOKED, the stream's `kicked` event, or participant_removed naming
 * our token. A room with no broadcast yet stays `connecting` and retries.
 * ended and kicked are final; after ended the events keep flowing to the
 * parent (recording_stopped …), after kicked everything stops. The events
 * stream's readiness shows as data-events="open" on #player (tests use it). */
(function () {
  'use strict';

  var cfg = JSON.parse(document.getElementById('castgate-config').textContent);
  var root = document.getElementById('player');
  var video = document.getElementById('video');
  var statusEl = document.getElementById('status');
  var messageEl = document.getElementById('message');
  var badge = document.getElementById('badge');
  var unmuteBtn = document.getElementById('unmute');
  var joinForm = document.getElementById('join');
  var codeInput = document.getElementById('code');

  var LABELS = {
    idle: 'Waiting',
    connecting: 'Connecting…',
    connected: 'Live',
    reconnecting: 'Reconnecting…',
    ended: 'The class has ended',
    kicked: 'You were removed from this class',
    error: 'Something went wrong'
  };
  var EVENT_TYPES = ['video_room_state', 'stream_key_state', 'connected', 'disconnected',
    'participant_joined', 'participant_left', 'class_ended', 'participant_removed',
    'recording_started', 'recording_stopped', 'recording_state', 'quality_changed'];

  var params = new URLSearchParams(location.search);
  var token = params.get('token') || '';
  var sid = makeSid();
  var state = 'idle';
  var hls = null;
  var events = null;
  var everConnected = false;
  var endlist = false;
  var retryTimer = null;
  var retryDelay = 1000;
  var stallTimer = null;
  var mediaRecoveries = 0;

  function makeSid() {
    var a = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(a);
    var s = '';
    for (var i = 0; i < a.length; i++) s += ('0' + a[i].toString(16)).slice(-2);
    return s;
  }

  function tokenClaims() {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      while (part.length % 4) part += '=';
      return JSON.parse(atob(part));
    } catch (e) {
      return {};
    }
  }

  function post(msg) {
    msg.type = 'castgate';
    msg.roomId = cfg.roomId;
    try {
      if (window.parent && window.parent !== window) window.parent.postMessage(msg, '*');
    } catch (e) { /* a parent that refuses messages is not our problem */ }
  }

  function isTerminal(s) { return s === 'ended' || s === 'kicked'; }

  function setState(next, detail) {
    if (next === state && !detail) return;
    if (isTerminal(state)) return; /* ended and kicked are final */
    var prev = state;
    state = next;
    root.setAttribute('data-state', next);
    badge.setAttribute('data-state', next);
    badge.textContent = next;
    statusEl.textContent = LABELS[next] || next;
    messageEl.textContent = detail || '';
    if (next === prev) return;
    post({ state: next, event: null, detail: detail || null });
    if (next === 'connected') {
      everConnected = true;
      emit({ type: 'connected', source: 'player' });
    } else if (prev === 'connected') {
      emit({ type: 'disconnected', source: 'player' });
    }
    if (isTerminal(next)) stopAll(next === 'kicked');
  }

  function emit(ev) {
    post({ state: state, event: ev });
  }

  /* ended: playback may finish, events keep flowing (recording_stopped …);
   * kicked: everything stops. */
  function stopAll(hard) {
    clearTimeout(retryTimer);
    clearTimeout(stallTimer);
    if (hard) {
      if (events) { events.close(); events = null; }
      if (hls) { hls.destroy(); hls = null; }
      video.removeAttribute('src');
      try { video.load(); } catch (e) { /* ignore */ }
    }
  }

  function query(extra) {
    var q = new URLSearchParams();
    if (token) q.set('token', token);
    q.set('sid', sid);
    if (extra) Object.keys(extra).forEach(function (k) { q.set(k, extra[k]); });
    return '?' + q.toString();
  }

  /* ---- events (API-10) ---------------------------------------------------- */

  function onEvent(type, e) {
    var ev;
    try { ev = JSON.parse(e.data); } catch (x) { return; }
    emit(ev);
    if (type === 'class_ended' || (type === 'video_room_state' && (ev.toState === 'ENDED' || ev.toState === 'ARCHIVED'))) {
      setState('ended', 'The teacher ended the class.');
    } else if (type === 'participant_removed' && ev.data && token &&
               ev.data.tokenId === tokenClaims().tid) {
      setState('kicked');
    }
  }

  function openEvents() {
    if (!window.EventSource || events || state === 'kicked') return;
    events = new EventSource(cfg.eventsUrl + query());
    EVENT_TYPES.forEach(function (t) {
      events.addEventListener(t, function (e) { onEvent(t, e); });
    });
    events.addEventListener('kicked', function () { setState('kicked'); });
    events.addEventListener('expired', function () {
      if (events) { events.close(); events = null; }
    });
    events.onopen = function () { root.setAttribute('data-events', 'open'); };
    events.onerror = function () {
      root.setAttribute('data-events', 'closed');
      /* EventSource retries by itself unless the server refused (CLOSED). */
      if (events && events.readyState === 2) {
        events = null;
        if (state !== 'kicked') setTimeout(openEvents, 10000);
      }
    };
  }

  /* ---- playback ------------------------------------------------------------ */

  function scheduleRetry(why) {
    clearTimeout(retryTimer);
    setState(everConnected ? 'reconnecting' : 'connecting', why);
    retryTimer = setTimeout(load, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 8000);
  }

  /* 401/403: ask the server why (hls.js only reports the status). */
  function refused(code) {
    fetch(cfg.hlsUrl + query(), { cache: 'no-store' }).then(function (r) {
      return r.json();
    }).then(function (body) {
      return body && body.errorCode;
    }, function () { return null; }).then(function (errorCode) {
      if (errorCode === 'TOKEN_REVOKED' || (everConnected && (code === 401 || code === 403))) {
        setState('kicked');
      } else if (errorCode === 'TOKEN_REQUIRED' && cfg.needsToken) {
        showJoin('This class needs an access code.');
      } else {
        setState('error', errorCode === 'TOKEN_EXPIRED' ? 'Your access has expired.' :
          'Access refused (' + (errorCode || code) + ').');
      }
    });
  }

  function httpError(code) {
    if (code === 401 || code === 403) {
      if (hls) { hls.destroy(); hls = null; }
      refused(code);
    } else if (code === 404) {
      if (hls) { hls.destroy(); hls = null; }
      retryDelay = 3000;
      scheduleRetry(everConnected ? 'The broadcast paused; waiting for it to resume.'
                                  : 'Waiting for the broadcast to start.');
    } else if (code === 410) {
      setState('ended', 'This broadcast is no longer available.');
    } else if (code === 429) {
      if (hls) { hls.destroy(); hls = null; }
      retryDelay = 10000;
      setState('error', 'This class is full; retrying…');
      clearTimeout(retryTimer);
      retryTimer = setTimeout(load, retryDelay);
    } else {
      if (hls) { hls.destroy(); hls = null; }
      scheduleRetry('Network problem; retrying.');
    }
  }

  function load() {
    clearTimeout(retryTimer);
    if (isTerminal(state)) return;
    setState(everConnected ? 'reconnecting' : 'connecting');
    var src = cfg.hlsUrl + query();
    if (window.Hls && window.Hls.isSupported()) {
      var H = window.Hls;
      hls = new H({
        lowLatencyMode: true,
        backBufferLength: 30,
        manifestLoadingMaxRetry: 0,
        levelLoadingMaxRetry: 2,
        fragLoadingMaxRetry: 4
      });
      hls.on(H.Events.LEVEL_LOADED, function (ev, data) {
        if (data.details && !data.details.live) {
          endlist = true;
          if (!everConnected && video.paused) setState('ended', 'Replay available.');
        }
      });
      hls.on(H.Events.MANIFEST_PARSED, function () {
        retryDelay = 1000;
        var p = video.play();
        if (p && p.catch) p.catch(function () { /* autoplay refused: controls remain */ });
      });
      hls.on(H.Events.ERROR, function (ev, data) {
        var code = data.response && data.response.code;
        if (code && (data.type === H.ErrorTypes.NETWORK_ERROR) &&
            (data.fatal || code === 401 || code === 403 || code === 410)) {
          httpError(code);
          return;
        }
        if (!data.fatal) return;
        if (data.type === H.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
          mediaRecoveries++;
          if (mediaRecoveries === 1) hls.recoverMediaError();
          else { hls.swapAudioCodec(); hls.recoverMediaError(); }
          return;
        }
        if (data.type === H.ErrorTypes.NETWORK_ERROR) {
          hls.destroy(); hls = null;
          scheduleRetry('Connection lost; retrying.');
          return;
        }
        hls.destroy(); hls = null;
        setState('error', 'Playback failed (' + data.details + ').');
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src;
      var p = video.play();
      if (p && p.catch) p.catch(function () { /* autoplay refused */ });
    } else if (!cfg.hlsJsAvailable) {
      setState('error', 'The player library is missing on this server.');
    } else {
      setState('error', 'This browser cannot play HLS.');
    }
  }

  video.addEventListener('playing', function () {
    clearTimeout(stallTimer);
    retryDelay = 1000;
    mediaRecoveries = 0;
    setState('connected');
    unmuteBtn.hidden = !video.muted;
  });
  video.addEventListener('waiting', function () {
    if (state !== 'connected') return;
    clearTimeout(stallTimer);
    stallTimer = setTimeout(function () {
      if (state === 'connected') setState('reconnecting', 'Buffering…');
    }, 3000);
  });
  video.addEventListener('ended', function () {
    if (endlist || everConnected) setState('ended');
  });
  video.addEventListener('error', function () {
    if (!hls && !isTerminal(state)) scheduleRetry('Playback error; retrying.');
  });
  video.addEventListener('volumechange', function () { unmuteBtn.hidden = !video.muted; });
  unmuteBtn.addEventListener('click', function () { video.muted = false; video.play(); });

  window.addEventListener('message', function (e) {
    var m = e.data;
    if (!m || m.type !== 'castgate-command') return;
    if (m.command === 'play') video.play();
    else if (m.command === 'pause') video.pause();
    else if (m.command === 'mute') video.muted = true;
    else if (m.command === 'unmute') video.muted = false;
  });

  /* ---- access code -------------------------------------------------------- */

  function showJoin(msg) {
    setState('idle', msg);
    joinForm.hidden = false;
    codeInput.focus();
  }

  joinForm.addEventListener('submit', function (e) {
    e.preventDefault();
    fetch(cfg.joinUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: codeInput.value })
    }).then(function (r) {
      return r.json().then(function (b) { return { ok: r.ok, body: b }; });
    }).then(function (res) {
      if (!res.ok || !res.body.data || !res.body.data.token) {
        messageEl.textContent = (res.body && res.body.message) || 'That code did not work.';
        return;
      }
      token = res.body.data.token;
      var q = new URLSearchParams(location.search);
      q.set('token', token);
      history.replaceState(null, '', location.pathname + '?' + q.toString());
      joinForm.hidden = true;
      start();
    }, function () {
      messageEl.textContent = 'Network problem; try again.';
    });
  });

  /* ---- start --------------------------------------------------------------- */

  function start() {
    if (cfg.tokenError === 'TOKEN_REVOKED' && token === params.get('token')) {
      setState('kicked');
      return;
    }
    if (cfg.tokenError && token === params.get('token')) {
      setState('error', cfg.tokenError === 'TOKEN_EXPIRED' ? 'Your access has expired.'
                                                           : 'This link is not valid for this class.');
      return;
    }
    if (cfg.needsToken && !token) {
      showJoin('This class needs an access code.');
      return;
    }
    openEvents();
    load();
  }

  window.castgatePlayer = {
    get state() { return state; },
    get hls() { return hls; },
    video: video
  };
  post({ state: 'idle', event: null, detail: null });
  start();
})();
