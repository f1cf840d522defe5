// Sign-in: a user name and password traded for a browser session (an HttpOnly cookie the
// page never sees, and a CSRF token it sends with every change).
import {post, setCSRF} from './api.js';
import {h} from './dom.js';

export async function signinPage(view, ctx) {
  const error = h('p', {class: 'error', role: 'alert', id: 'signin-error'});
  const user = h('input', {id: 'user', name: 'user', autocomplete: 'username', required: true, autofocus: true});
  const pass = h('input', {id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true});
  const button = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
  const form = h('form', {class: 'signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to Conveyor'),
    h('label', {for: 'user'}, 'User name'), user,
    h('label', {for: 'password'}, 'Password'), pass,
    error, button,
    h('p', {class: 'muted small'}, 'No password? An admin sets one: conveyor user create NAME --password-stdin.'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    error.textContent = '';
    try {
      const s = await post('/auth/session', {user: user.value, password: pass.value});
      setCSRF(s.csrfToken);
      await ctx.signedIn();
      const next = ctx.query.get('next');
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', {replace: true});
    } catch (err) {
      error.textContent = err.status === 401 ? 'Wrong user name or password.' : err.message;
      button.disabled = false;
      pass.select();
    }
  });
  view.append(form);
  user.focus();
}
