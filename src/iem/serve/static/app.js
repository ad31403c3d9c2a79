// The page of `iem serve`: photos in, masks from POST /api/segment, boxes and strokes to guide IEM.
// Plain browser APIs only (no library, no network beyond this server), so it works offline.
'use strict';

const OVERLAY_COLOR = [0, 200, 255];   // the same cyan as the CLI's overlays
const OVERLAY_OPACITY = 0.45;
const BACKGROUND_DIM = 0.6;
const MARK_COLORS = { foreground: 'rgba(0, 220, 90, 0.75)', background: 'rgba(255, 50, 50, 0.75)' };
const MAX_RETRIES = 5;                 // a busy server (503) is asked again after Retry-After

const cards = document.getElementById('cards');
const template = document.getElementById('card-template');
const presetSelect = document.getElementById('preset');
const overall = document.getElementById('overall');
const overallText = document.getElementById('overall-text');
const photos = [];

function tool() { return document.querySelector('input[name="tool"]:checked').value; }

async function loadInfo() {
  const info = await (await fetch('/api/info')).json();
  for (const name of info.presets) {
    const option = document.createElement('option');
    option.value = option.textContent = name;
    option.selected = name === info.settings.preset;
    presetSelect.appendChild(option);
  }
}

function updateOverall() {
  const done = photos.filter(p => p.card.dataset.state === 'done' || p.card.dataset.state === 'error').length;
  document.getElementById('overall-wrap').hidden = photos.length === 0;
  overall.max = photos.length;
  overall.value = done;
  overallText.textContent = `${done} of ${photos.length} photos done`;
}

function whiteCanvas(width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

// Natural-resolution pixel under a pointer event on a canvas shown scaled down.
function pointerAt(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * canvas.width / rect.width, (event.clientY - rect.top) * canvas.height / rect.height];
}

function redrawMarks(photo, preview) {
  const ctx = photo.marks.getContext('2d');
  ctx.clearRect(0, 0, photo.marks.width, photo.marks.height);
  for (const side of ['foreground', 'background']) {
    if (!photo.painted[side]) continue;
    // The stroke layers are white on transparent; tint them for display.
    const tinted = whiteCanvas(photo.width, photo.height);
    const t = tinted.getContext('2d');
    t.drawImage(photo.layers[side], 0, 0);
    t.globalCompositeOperation = 'source-in';
    t.fillStyle = MARK_COLORS[side];
    t.fillRect(0, 0, photo.width, photo.height);
    ctx.drawImage(tinted, 0, 0);
  }
  const box = preview || photo.box;
  if (box) {
    ctx.lineWidth = Math.max(2, photo.width / 300);
    ctx.strokeStyle = '#ffcc00';
    ctx.setLineDash([ctx.lineWidth * 4, ctx.lineWidth * 2]);
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  }
}

function attachDrawing(photo) {
  const canvas = photo.marks;
  let start = null, last = null, mode = null;
  canvas.addEventListener('pointerdown', event => {
    canvas.setPointerCapture(event.pointerId);
    mode = tool();
    start = last = pointerAt(canvas, event);
    if (mode !== 'box') paint(start, start);
  });
  canvas.addEventListener('pointermove', event => {
    if (!start) return;
    const here = pointerAt(canvas, event);
    if (mode === 'box') redrawMarks(photo, boxFrom(start, here));
    else { paint(last, here); last = here; }
  });
  canvas.addEventListener('pointerup', event => {
    if (!start) return;
    const here = pointerAt(canvas, event);
    if (mode === 'box') {
      const box = boxFrom(start, here);
      if (box[2] - box[0] >= 2 && box[3] - box[1] >= 2) photo.box = box;
    }
    start = null;
    redrawMarks(photo);
    setStatus(photo, 'Marks changed: press Re-run.');
  });
  function boxFrom(a, b) {
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    return [clamp(Math.min(a[0], b[0]), photo.width), clamp(Math.min(a[1], b[1]), photo.height),
            clamp(Math.max(a[0], b[0]), photo.width), clamp(Math.max(a[1], b[1]), photo.height)];
  }
  function paint(a, b) {
    const width = Number(document.getElementById('brush').value) * canvas.width / canvas.getBoundingClientRect().width;
    const other = mode === 'foreground' ? 'background' : 'foreground';
    for (const [side, op] of [[mode, 'source-over'], [other, 'destination-out']]) {
      const ctx = photo.layers[side].getContext('2d');
      ctx.globalCompositeOperation = op;
      ctx.strokeStyle = ctx.fillStyle = '#fff';
      ctx.lineWidth = width;
      ctx.lineCap = 'round';
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0] + 0.01, b[1]);
      ctx.stroke();
    }
    photo.painted[mode] = true;
    redrawMarks(photo);
  }
}

// A stroke layer as the API wants it: white marks on black, at the photo's resolution.
function marksBlob(layer) {
  const out = whiteCanvas(layer.width, layer.height);
  const ctx = out.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(layer, 0, 0);
  return new Promise(resolve => out.toBlob(resolve, 'image/png'));
}

function setStatus(photo, text) { photo.card.querySelector('.status').textContent = text; }

function showResult(photo, maskBitmap) {
  const { width, height } = photo;
  const maskPixels = (() => {
    const c = whiteCanvas(width, height).getContext('2d');
    c.drawImage(maskBitmap, 0, 0, width, height);
    return c.getImageData(0, 0, width, height).data;
  })();
  const source = photo.photo.getContext('2d').getImageData(0, 0, width, height);
  const overlay = new ImageData(width, height);
  const cutout = new ImageData(width, height);
  for (let i = 0; i < maskPixels.length; i += 4) {
    const fg = maskPixels[i] > 127;
    for (let c = 0; c < 3; c++) {
      const v = source.data[i + c];
      overlay.data[i + c] = fg ? v * (1 - OVERLAY_OPACITY) + OVERLAY_COLOR[c] * OVERLAY_OPACITY : v * BACKGROUND_DIM;
      cutout.data[i + c] = v;
    }
    overlay.data[i + 3] = 255;
    cutout.data[i + 3] = fg ? 255 : 0;
  }
  for (const [name, data] of [['overlay', overlay], ['cutout', cutout]]) {
    const canvas = photo.card.querySelector('.' + name);
    canvas.width = width;
    canvas.height = height;
    canvas.getContext('2d').putImageData(data, 0, 0);
  }
  photo.card.querySelector('.cutout').toBlob(blob => {
    setLink(photo, '.dl-cutout', blob, `${photo.stem}.cutout.png`);
  }, 'image/png');
}

function setLink(photo, selector, blob, name) {
  const link = photo.card.querySelector(selector);
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.classList.remove('disabled');
}

async function run(photo) {
  const card = photo.card;
  card.dataset.state = 'running';
  card.querySelector('.busy').hidden = false;
  card.querySelector('.run').disabled = true;
  const started = performance.now();
  const ticker = setInterval(() => setStatus(photo, `Segmenting… ${((performance.now() - started) / 1000).toFixed(1)} s`), 200);
  updateOverall();
  try {
    const form = new FormData();
    form.append('file', photo.file, photo.file.name);
    form.append('preset', presetSelect.value);
    form.append('output', 'mask');
    const box = photo.box ? photo.box.map(v => Math.round(v)).join(',') : '';
    if (box) form.append('box', box);
    card.dataset.box = box;  // what was sent, shown to tests and inspectors
    for (const side of ['foreground', 'background']) {
      if (photo.painted[side]) form.append(side, await marksBlob(photo.layers[side]), side + '.png');
    }
    let response;
    for (let attempt = 0; ; attempt++) {
      response = await fetch('/api/segment', { method: 'POST', body: form });
      if (response.status !== 503 || attempt >= MAX_RETRIES) break;
      const wait = Number(response.headers.get('Retry-After') || 1);
      setStatus(photo, `Server busy, retrying in ${wait} s`);
      await new Promise(resolve => setTimeout(resolve, wait * 1000));
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({ error: response.statusText }));
      throw new Error(`${response.status}: ${body.error}`);
    }
    const blob = await response.blob();
    setLink(photo, '.dl-mask', blob, `${photo.stem}.mask.png`);
    if (photo.displayable) showResult(photo, await createImageBitmap(blob));
    photo.runs += 1;
    card.dataset.runs = String(photo.runs);
    card.dataset.state = 'done';
    clearInterval(ticker);
    const batch = response.headers.get('X-IEM-Batch');
    setStatus(photo, `Done in ${((performance.now() - started) / 1000).toFixed(1)} s` + (batch > 1 ? ` (batched with ${batch - 1} other)` : ''));
  } catch (error) {
    clearInterval(ticker);
    card.dataset.state = 'error';
    setStatus(photo, `Failed: ${error.message}`);
  } finally {
    card.querySelector('.busy').hidden = true;
    card.querySelector('.run').disabled = false;
    updateOverall();
  }
}

async function addPhoto(file) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.querySelector('.name').textContent = file.name;
  cards.appendChild(card);
  const photo = { file, card, stem: file.name.replace(/\.[^.]*$/, ''), box: null, runs: 0,
                  painted: { foreground: false, background: false }, displayable: true,
                  photo: card.querySelector('.photo'), marks: card.querySelector('.marks') };
  photos.push(photo);
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    photo.width = bitmap.width;
    photo.height = bitmap.height;
    for (const canvas of [photo.photo, photo.marks]) { canvas.width = bitmap.width; canvas.height = bitmap.height; }
    photo.photo.getContext('2d').drawImage(bitmap, 0, 0);
    photo.layers = { foreground: whiteCanvas(bitmap.width, bitmap.height), background: whiteCanvas(bitmap.width, bitmap.height) };
    attachDrawing(photo);
  } catch (error) {
    photo.displayable = false;  // the browser cannot show it; the server may still read it
    setStatus(photo, 'This browser cannot display the photo; the mask can still be downloaded.');
  }
  card.querySelector('.run').addEventListener('click', () => run(photo));
  card.querySelector('.clear').addEventListener('click', () => {
    photo.box = null;
    for (const side of ['foreground', 'background']) {
      if (photo.layers) photo.layers[side].getContext('2d').clearRect(0, 0, photo.width, photo.height);
      photo.painted[side] = false;
    }
    if (photo.layers) redrawMarks(photo);
  });
  return run(photo);
}

function addFiles(files) { for (const file of files) addPhoto(file); }

const drop = document.getElementById('drop');
document.getElementById('files').addEventListener('change', event => { addFiles(event.target.files); event.target.value = ''; });
for (const name of ['dragenter', 'dragover']) drop.addEventListener(name, event => { event.preventDefault(); drop.classList.add('over'); });
for (const name of ['dragleave', 'drop']) drop.addEventListener(name, () => drop.classList.remove('over'));
drop.addEventListener('drop', event => { event.preventDefault(); addFiles(event.dataTransfer.files); });
loadInfo();
