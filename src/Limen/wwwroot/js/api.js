// Calls to Limen's API from a page: the session cookie goes by itself; an unsafe method also sends
// the anti-forgery token the page was rendered with. An expired session goes to the sign-in page
// and comes back here afterwards.
const csrf = () => document.querySelector('meta[name="limen-csrf"]')?.content ?? '';

export function signInAgain() {
  location.assign('/signin?return=' + encodeURIComponent(location.pathname + location.search));
}

export async function api(method, path, body) {
  const headers = {};
  if (!['GET', 'HEAD'].includes(method)) headers['X-CSRF-TOKEN'] = csrf();
  let payload;
  if (body instanceof FormData || body instanceof Blob) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (response.status === 401) signInAgain();
  return response;
}

// The problem+json of a refused request, or a stand-in for a response without one.
export async function problem(response) {
  try { return await response.json(); } catch { return { title: response.statusText, status: response.status }; }
}
