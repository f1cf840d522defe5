// Confirmation dialogs: every change made from the UI is asked for in a modal <dialog>
// (keyboard: Tab moves inside it, Escape cancels), sent, and its error shown in place.
import {h} from './dom.js';

// confirm opens a dialog titled title with the form fields in body; on submit it calls
// act(form) and closes when that succeeds, or shows the error and stays open. It resolves
// with act's result, or null when cancelled.
export function confirm({title, body, submit, danger, act}) {
  return new Promise((resolve) => {
    const error = h('p', {class: 'error', role: 'alert'});
    const ok = h('button', {type: 'submit', class: danger ? 'danger' : 'primary', value: 'ok'}, submit);
    const cancel = h('button', {type: 'button', onclick: () => dlg.close()}, 'Cancel');
    const form = h('form', {method: 'dialog'}, h('h2', {id: 'dlg-title'}, title), body, error, h('div', {class: 'bar'}, cancel, ok));
    const dlg = h('dialog', {'aria-labelledby': 'dlg-title'}, form);
    let result = null;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      ok.disabled = true;
      error.textContent = '';
      try {
        result = await act(form, ev.submitter);
        dlg.close();
      } catch (err) {
        error.textContent = err.message;
        ok.disabled = false;
      }
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector('textarea, input, select');
    (first || ok).focus();
  });
}

// field is a labelled input; kind is 'text', 'textarea' or an array of [value, label] for a select.
export function field(name, label, kind = 'text', value = '') {
  const id = 'f-' + name + '-' + Math.random().toString(36).slice(2, 7);
  let input;
  if (kind === 'textarea') input = h('textarea', {id, name, rows: 3}, value);
  else if (Array.isArray(kind)) input = h('select', {id, name}, kind.map(([v, l]) => h('option', {value: v, selected: v === value}, l)));
  else input = h('input', {id, name, type: kind, value, autocomplete: 'off'});
  return [h('label', {for: id}, label), input];
}

// radios is a fieldset of radio buttons; options are [value, label], the first checked.
export function radios(name, legend, options) {
  return h('fieldset', null, h('legend', null, legend),
    options.map(([v, l], i) => h('label', {class: 'inline'}, h('input', {type: 'radio', name, value: v, checked: i === 0}), l)));
}
