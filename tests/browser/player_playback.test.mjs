// player_playback.test.mjs — real playback in headless Chromium: the video
// clock advances and decoded frames grow (getVideoPlaybackQuality).
//
// What to play comes from the environment, so the same test checks a live
// castgate stream or any HLS source:
//   CASTGATE_TEST_PLAY_URL  a castgate player page (an iframeUrl,
//                           http://HOST/play/ID?token=…): the page itself
//                           must reach `connected` and play;
//   CASTGATE_TEST_HLS_URL   an HLS playlist (e.g. a castgate playUrl, or an
//                           ffmpeg -f hls -hls_segment_type fmp4 folder served
//                           by `python3 -m http.server`): played by hls.js
//                           from node_modules with the player page's settings
//                           (lowLatencyMode) in a harness page.
// Without either the test is skipped, saying so.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { browserSkipReason, hlsJsSource, launchBrowser, waitFor } from './harness.mjs';

const PLAY_URL = process.env.CASTGATE_TEST_PLAY_URL || '';
const HLS_URL = process.env.CASTGATE_TEST_HLS_URL || '';
const ADVANCE_SEC = Number(process.env.CASTGATE_TEST_PLAY_SECONDS || 3);
// CASTGATE_TEST_LOW_LATENCY=0 plays the same playlist with hls.js's plain (non-LL) loader.
const LOW_LATENCY = process.env.CASTGATE_TEST_LOW_LATENCY !== '0';

const noSource = !PLAY_URL && !HLS_URL
  ? 'set CASTGATE_TEST_PLAY_URL (a castgate /play/{id}?token=… page) or CASTGATE_TEST_HLS_URL (an HLS playlist) to run playback'
  : null;
const skip = browserSkipReason() || noSource;

const HARNESS = `<!doctype html><meta charset="utf-8"><title>hls harness</title>
<video id="video" muted autoplay playsinline width="640" height="360"></video>
<script src="/__castgate_test/hls.min.js"></script>
<script>
  window.errors = [];
  const video = document.getElementById('video');
  const src = new URLSearchParams(location.search).get('src');
  if (window.Hls && Hls.isSupported()) {
    const ll = new URLSearchParams(location.search).get('ll') !== '0';
    const hls = new Hls({ lowLatencyMode: ll, backBufferLength: 30 });
    window.lowLatency = ll;
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.errors.push(d.details); });
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => window.errors.push(String(e))));
    hls.loadSource(src);
    hls.attachMedia(video);
  } else {
    window.errors.push('hls.js not supported');
  }
</script>`;

/** Samples the page's <video>: time, decoded frames, dropped frames. */
function sample(target) {
  return target.evaluate(() => {
    const v = document.querySelector('video');
    const q = v.getVideoPlaybackQuality();
    return { t: v.currentTime, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
             w: v.videoWidth, h: v.videoHeight, paused: v.paused };
  });
}

async function assertPlays(target) {
  const first = await waitFor(async () => {
    const s = await sample(target);
    return s.t > 0.2 && s.frames > 0 ? s : null;
  }, 30000, 'playback start');
  const later = await waitFor(async () => {
    const s = await sample(target);
    return s.t >= first.t + ADVANCE_SEC ? s : null;
  }, (ADVANCE_SEC + 20) * 1000, `the clock to advance ${ADVANCE_SEC}s`);
  assert.ok(later.frames > first.frames, `decoded frames grow (${first.frames} → ${later.frames})`);
  assert.ok(later.w > 0 && later.h > 0, 'a picture has a size');
  return later;
}

describe('playback', { skip: skip || false }, () => {
  let browser;

  before(async () => {
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
  });

  test('an HLS playlist plays in hls.js (CASTGATE_TEST_HLS_URL)', { skip: HLS_URL ? false : 'CASTGATE_TEST_HLS_URL not set' }, async () => {
    // The harness page is answered by the browser itself on the stream's own
    // origin (no CORS needed from e.g. python -m http.server).
    const origin = new URL(HLS_URL).origin;
    const page = await browser.context.newPage();
    await page.route(`${origin}/__castgate_test/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path.endsWith('/hls.min.js')) return route.fulfill({ contentType: 'text/javascript', body: hlsJsSource() });
      return route.fulfill({ contentType: 'text/html; charset=utf-8', body: HARNESS });
    });
    await page.goto(`${origin}/__castgate_test/harness.html?ll=${LOW_LATENCY ? 1 : 0}&src=${encodeURIComponent(HLS_URL)}`);
    const s = await assertPlays(page);
    assert.deepEqual(await page.evaluate(() => window.errors), []);
    assert.equal(await page.evaluate(() => window.lowLatency), LOW_LATENCY);
    console.log(`played ${s.t.toFixed(2)}s, ${s.frames} frames (${s.dropped} dropped), ${s.w}x${s.h}, lowLatency=${LOW_LATENCY}`);
    await page.close();
  });

  test('the castgate player page plays and reports connected (CASTGATE_TEST_PLAY_URL)', { skip: PLAY_URL ? false : 'CASTGATE_TEST_PLAY_URL not set' }, async () => {
    const page = await browser.context.newPage();
    await page.goto(PLAY_URL);
    const s = await assertPlays(page);
    const state = await page.evaluate(() => document.getElementById('player').dataset.state);
    assert.ok(state === 'connected' || state === 'ended', `state ${state}`);
    console.log(`player page: ${state}, ${s.t.toFixed(2)}s, ${s.frames} frames, ${s.w}x${s.h}`);
    await page.close();
  });
});
