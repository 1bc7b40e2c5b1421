/*
 * Demo storefront: vanilla JavaScript over the store API (/store/...), no build step.
 *
 * The page never computes a price: every total it shows comes from the API. Amounts are
 * integers in the currency's minor unit and are formatted with string arithmetic (never
 * floats), using the exponent table the server renders into #storefront-config.
 *
 * Payment works with real Stripe.js and with localstripe's fake one: the card element is
 * tokenized (stripe.createToken), the server attaches the token to a Stripe Customer,
 * sets it on the cart's PaymentIntent and confirms it; a `requires_action` answer (3-D
 * Secure) is finished in the browser with stripe.confirmCardPayment(client_secret), then
 * the cart is completed and the shopper lands on /orders/<id>.
 *
 * Accounts: the shopper signs in with POST /store/auth/token and every API call then carries
 * `Authorization: Bearer <token>` (carts created signed in belong to the customer; saved cards,
 * order history). The token is kept in localStorage, not sessionStorage: the cart id already
 * lives there, and a shopper who opens an order link in a new tab or comes back tomorrow expects
 * to be still signed in; sessionStorage would sign them out per tab while protecting nothing
 * more (script on the page can read either, and the page loads no script but ours and
 * Stripe.js). Signing out forgets the token and the cart in this browser; the API has no call
 * to revoke a token, so a token copied elsewhere stays valid. A token the API refuses (401) is
 * forgotten at once and the header shows "Sign in" again.
 *
 * Saved cards: a signed-in shopper may pay with a saved card (payment-sessions with
 * `payment_method_id`, confirmed server-side; 3-D Secure finished with confirmCardPayment) or
 * tick "Save this card": the card is then confirmed in the browser with
 * stripe.confirmCardPayment(client_secret, {payment_method: {card}}) on a session created with
 * `save_payment_method: true`, the one way the API keeps a card (a `card_token` card is not
 * listed among the saved cards).
 */
(function () {
  'use strict';

  const CONFIG = JSON.parse(document.getElementById('storefront-config').textContent);
  const CART_KEY = 'storefront.cart_id';
  const REGION_KEY = 'storefront.region_id';
  const TOKEN_KEY = 'storefront.token';
  const AUTHORIZED = ['authorized', 'succeeded'];

  // --- Money -----------------------------------------------------------------------

  function exponentOf(currency) {
    const exponent = CONFIG.currency_exponents[String(currency).toLowerCase()];
    return exponent === undefined ? CONFIG.default_exponent : exponent;
  }

  /** 1450 usd -> "$14.50", 2200 jpy -> "¥2,200", 4450 kwd -> "KD 4.450" (string arithmetic only). */
  function formatMoney(amount, currency) {
    if (amount === null || amount === undefined) return '—';
    const exponent = exponentOf(currency);
    const sign = amount < 0 ? '-' : '';
    const digits = String(Math.abs(amount)).padStart(exponent + 1, '0');
    const units = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const text = exponent ? units + '.' + digits.slice(digits.length - exponent) : units;
    const symbol = CONFIG.currency_symbols[String(currency).toLowerCase()];
    return symbol ? sign + symbol + text : sign + text + ' ' + String(currency).toUpperCase();
  }

  // --- Messages ----------------------------------------------------------------------

  /** An error whose text is already meant for the shopper. */
  class ShopperError extends Error {}

  /** An error answer of the store API: {"error": {type, code, message, param}}. */
  class ApiError extends Error {
    constructor(status, error) {
      super((error && error.message) || 'Request failed.');
      this.status = status;
      this.code = (error && error.code) || 'unknown';
      this.param = (error && error.param) || null;
      this.type = (error && error.type) || null;
    }
  }

  const FIELD_LABELS = {
    email: 'Email',
    first_name: 'First name',
    last_name: 'Last name',
    address_1: 'Address',
    address_2: 'Apartment, suite',
    city: 'City',
    province: 'State / province',
    postal_code: 'Postal code',
    country_code: 'Country',
    phone: 'Phone',
    quantity: 'Quantity',
    password: 'Password',
  };

  function fieldLabel(param) {
    const parts = String(param).split('.');
    const label = FIELD_LABELS[parts[parts.length - 1]] || parts[parts.length - 1].replace(/_/g, ' ');
    return parts[0] === 'billing_address' ? 'Billing ' + label.toLowerCase() : label;
  }

  /** Words for the shopper: never raw JSON, never a stack trace. */
  function describeError(err, context) {
    if (err instanceof ShopperError) return err.message;
    if (!(err instanceof ApiError)) return 'Something went wrong in the page. Please reload and try again.';
    switch (err.code) {
      case 'card_declined':
        return (err.message || 'Your card was declined.') + ' Please try another card.';
      case 'payment_requires_action':
        return 'Your bank needs you to confirm this payment. Please press Pay again to authenticate.';
      case 'payment_not_authorized':
      case 'payment_canceled':
        return 'The payment was not approved. Please try again or use another card.';
      case 'amount_mismatch':
      case 'payment_session_stale':
        return 'Your cart changed while you were paying. Please press Pay again to confirm the new total.';
      case 'insufficient_inventory': {
        const line = context && context.cart && context.cart.items.find((item) => item.variant_id === err.param);
        return line
          ? `Sorry, we do not have enough “${line.title}” left. Please lower the quantity.`
          : 'Sorry, we do not have enough of an item left. Please lower the quantity.';
      }
      case 'cart_expired':
        return 'Your cart expired, so we started a new one. Please add your items again.';
      case 'cart_completed':
        return 'This cart has already been ordered. We started a new one for you.';
      case 'cart_completing':
        return 'Your order is being placed right now. Please wait a moment and reload the page.';
      case 'cart_empty':
        return 'Your cart is empty. Add something first.';
      case 'missing_shipping_address':
        return 'Please save your email, address and shipping option before paying.';
      case 'rate_limited':
        return 'Too many attempts in a short time. Please wait a minute and try again.';
      case 'checkout_disabled':
        return 'Checkout is paused for a moment. Your cart is saved; please try again later.';
      case 'payment_provider_unavailable':
      case 'payment_provider_error':
        return 'The payment service is not responding. Please try again in a moment.';
      case 'validation_error':
      case 'country_not_in_region':
        return err.param ? `${fieldLabel(err.param)}: ${err.message}` : err.message;
      case 'not_found':
        return 'We could not find that. It may have been removed; please reload the page.';
      case 'invalid_credentials':
        return err.message === 'Invalid token.' ? 'Your sign-in has expired. Please sign in again.' : 'Wrong email or password.';
      case 'not_authenticated':
        return 'Please sign in first.';
      case 'email_taken':
        return 'An account with this email already exists. Please sign in instead.';
      default:
        if (err.status >= 500) return 'The shop is having trouble right now. Please try again in a moment.';
        return err.message || 'Something went wrong. Please try again.';
    }
  }

  function showMessage(text, kind) {
    const box = document.getElementById('message');
    box.textContent = text;
    box.className = 'message ' + (kind || 'error');
    box.hidden = false;
    box.dataset.kind = kind || 'error';
    // The shopper is usually further down (at the Pay button): bring the message into view.
    box.scrollIntoView({block: 'center'});
  }

  function clearMessage() {
    const box = document.getElementById('message');
    box.hidden = true;
    box.textContent = '';
    delete box.dataset.kind;
  }

  // --- Signed-in shopper ----------------------------------------------------------------

  function authToken() {
    return localStorage.getItem(TOKEN_KEY);
  }

  function setAuthToken(token) {
    localStorage.setItem(TOKEN_KEY, token);
    customerPromise = null;
  }

  function forgetAuthToken() {
    localStorage.removeItem(TOKEN_KEY);
    customerPromise = null;
  }

  let customerPromise = null;

  /** The signed-in customer ({id, email, first_name, last_name, date_joined}) or null; one request per page. */
  function currentCustomer() {
    if (!customerPromise) {
      customerPromise = authToken()
        ? api('GET', '/store/customers/me').then((data) => data.customer, () => null)
        : Promise.resolve(null);
    }
    return customerPromise;
  }

  /** A same-site path to go back to after signing in (never another host). */
  function nextPath(fallback) {
    const next = new URLSearchParams(location.search).get('next') || '';
    return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : fallback;
  }

  function signInPath() {
    return '/account/sign-in?next=' + encodeURIComponent(location.pathname + location.search);
  }

  /** The header on every page: "Sign in", or the shopper's email, "Account" and "Sign out". */
  async function startHeader() {
    $('#nav-sign-out').addEventListener('click', signOut);
    const customer = await currentCustomer();
    const nav = $('.account-nav');
    $('#nav-sign-in').hidden = Boolean(customer);
    if (!['/account/sign-in', '/account/register'].includes(location.pathname)) $('#nav-sign-in').href = signInPath();
    $('#nav-email').hidden = !customer;
    $('#nav-email').textContent = customer ? customer.email : '';
    $('#nav-account').hidden = !customer;
    $('#nav-sign-out').hidden = !customer;
    nav.dataset.state = customer ? 'signed-in' : 'signed-out';
  }

  function signOut() {
    forgetAuthToken();
    localStorage.removeItem(CART_KEY);  // a customer's cart is not the next shopper's
    location.assign('/');
  }

  // --- Countries, addresses and dates ---------------------------------------------------

  const REGION_NAMES = (() => {
    try {
      return new Intl.DisplayNames(['en'], {type: 'region'});
    } catch (ignored) {
      return null;
    }
  })();

  /** "DE" -> "Germany" (the browser's own table, offline); an unknown code as given. */
  function countryName(code) {
    if (!code) return '';
    try {
      return (REGION_NAMES && REGION_NAMES.of(code)) || code;
    } catch (ignored) {
      return code;
    }
  }

  function countryOptions(codes) {
    return codes
      .map((code) => ({code, name: countryName(code)}))
      .sort((a, b) => a.name.localeCompare(b.name, 'en'))
      .map(({code, name}) => el('option', {value: code, text: name}));
  }

  /** An API address as the lines of a label: name, street, "City, Province Postcode", country. */
  function addressLines(address) {
    if (!address) return [];
    const locality = [address.city, address.province].filter(Boolean).join(', ');
    return [
      `${address.first_name || ''} ${address.last_name || ''}`.trim(),
      address.company,
      address.address_1,
      address.address_2,
      [locality, address.postal_code].filter(Boolean).join(' '),
      countryName(address.country_code),
    ].filter(Boolean);
  }

  function formatDate(iso) {
    if (!iso) return '';
    return new Date(iso).toLocaleDateString('en-US', {year: 'numeric', month: 'short', day: 'numeric'});
  }

  // --- API ---------------------------------------------------------------------------

  function newIdempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /**
   * Call the store API. POSTs carry an Idempotency-Key; a network failure is retried once
   * with the same key, so the server answers the retry with the first result.
   */
  async function api(method, path, body, options) {
    const headers = {Accept: 'application/json'};
    const token = options && options.anonymous ? null : authToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method === 'POST') headers['Idempotency-Key'] = newIdempotencyKey();
    const init = {method, headers, body: body === undefined ? undefined : JSON.stringify(body)};
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(path, init);
        break;
      } catch (networkError) {
        if (attempt >= 1) throw new ShopperError('We could not reach the shop. Please check your connection and try again.');
      }
    }
    let data = null;
    try {
      data = await response.json();
    } catch (ignored) {
      data = null;
    }
    if (response.status === 401 && token && token === authToken()) forgetAuthToken();  // refused: sign in again
    if (!response.ok) throw new ApiError(response.status, data && data.error);
    return data;
  }

  // --- Small DOM helpers -------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function renderTotals(dl, doc, taxInclusive) {
    const money = (amount) => formatMoney(amount, doc.currency_code);
    const rows = [
      ['Subtotal', money(doc.subtotal), 'subtotal'],
      ['Shipping', doc.shipping_method ? money(doc.shipping_total) : 'Chosen at checkout', 'shipping'],
      [taxInclusive ? 'Tax (included)' : 'Tax', money(doc.tax_total), 'tax'],
      ['Total', money(doc.total), 'total'],
    ];
    dl.replaceChildren();
    for (const [label, value, key] of rows) {
      dl.append(el('dt', {text: label}), el('dd', {text: value, dataset: {total: key}}));
    }
    dl.hidden = false;
  }

  // --- Checkout page -----------------------------------------------------------------

  function startCheckout() {
    const state = {
      regions: [], region: null, products: [], categories: [], category: null, cart: null, shippingOptions: null,
      busy: false, customer: null, savedCards: null,
    };
    let stripe = null;
    let card = null;

    function regionById(id) {
      return state.regions.find((region) => region.id === id) || null;
    }

    function setBusy(busy) {
      state.busy = busy;
      document.body.classList.toggle('busy', busy);
      document.body.dataset.busy = busy ? 'true' : 'false';
      $('#pay-button').disabled = busy || !card;
      $('#address-submit').disabled = busy;
    }

    /** Run one shopper action: busy state, errors in words, cart refresh after a stale-cart answer. */
    async function act(action) {
      if (state.busy) return;
      clearMessage();
      setBusy(true);
      try {
        await action();
      } catch (err) {
        showMessage(describeError(err, state));
        if (state.cart) renderCart();  // put inputs back to what the server holds
        if (err instanceof ApiError && ['cart_expired', 'cart_completed'].includes(err.code)) {
          forgetCart();
        } else if (err instanceof ApiError && err.code === 'not_found' && state.cart && err.param === null) {
          await reloadCart().catch(() => forgetCart());
        }
      } finally {
        setBusy(false);
      }
    }

    function forgetCart() {
      localStorage.removeItem(CART_KEY);
      state.cart = null;
      state.shippingOptions = null;
      renderCart();
    }

    function setCart(cart) {
      state.cart = cart;
      localStorage.setItem(CART_KEY, cart.id);
      if (cart.region_id !== (state.region && state.region.id)) {
        state.region = regionById(cart.region_id);
        $('#region-select').value = cart.region_id;
      }
      renderCart();
    }

    async function reloadCart() {
      const {cart} = await api('GET', `/store/carts/${encodeURIComponent(state.cart.id)}`);
      setCart(cart);
    }

    // Regions and products

    /** First visit: the region that ships to the country of the browser's language (en-US -> US). */
    function regionForLocale(regions) {
      for (const tag of navigator.languages || [navigator.language || '']) {
        const country = (tag.split('-')[1] || '').toUpperCase();
        const region = country && regions.find((r) => r.countries.includes(country));
        if (region) return region;
      }
      return null;
    }

    async function loadRegions() {
      const {regions} = await api('GET', '/store/regions');
      state.regions = regions;
      const select = $('#region-select');
      select.replaceChildren(
        ...regions.map((region) =>
          el('option', {value: region.id, text: `${region.name} (${region.currency_code.toUpperCase()})`}),
        ),
      );
      select.disabled = !regions.length;
      if (!regions.length) throw new ShopperError('The shop has no regions set up yet.');
      state.region = regionById(localStorage.getItem(REGION_KEY)) || regionForLocale(regions) || regions[0];
      select.value = state.region.id;
    }

    /** Category chips, where the catalog has categories (an older API without them answers 404: no chips). */
    async function loadCategories() {
      try {
        const data = await api('GET', '/store/categories');
        state.categories = Array.isArray(data && data.categories) ? data.categories : [];
      } catch (ignored) {
        state.categories = [];
      }
      renderCategories();
    }

    function renderCategories() {
      const container = $('#categories');
      container.hidden = !state.categories.length;
      const chip = (handle, name) => {
        const button = el('button', {type: 'button', class: 'chip', text: name, 'aria-pressed': String(state.category === handle)});
        if (handle) button.dataset.category = handle;
        button.addEventListener('click', () => act(async () => {
          state.category = handle;
          renderCategories();
          await loadProducts();
        }));
        return button;
      };
      container.replaceChildren(chip(null, 'All'), ...state.categories.map((c) => chip(c.handle, c.name)));
    }

    async function loadProducts() {
      const container = $('#products');
      container.setAttribute('aria-busy', 'true');
      let url = `/store/products?region_id=${encodeURIComponent(state.region.id)}&limit=100`;
      if (state.category) url += `&category=${encodeURIComponent(state.category)}`;
      const products = [];
      for (let page = 0; url && page < 20; page++) {
        const data = await api('GET', url);
        products.push(...data.products);
        url = data.next ? new URL(data.next, location.href).pathname + new URL(data.next, location.href).search : null;
      }
      state.products = products;
      renderProducts();
      container.setAttribute('aria-busy', 'false');
    }

    function renderProducts() {
      const container = $('#products');
      container.replaceChildren();
      if (!state.products.length) {
        container.append(el('p', {class: 'muted', text: 'No products yet.'}));
        return;
      }
      for (const product of state.products) {
        const variants = product.variants.filter((variant) => variant.price);
        const article = el('article', {class: 'product', 'data-product': product.handle},
          thumbnail(product),
          el('h2', {text: product.title}),
          el('p', {class: 'description', text: product.description}));
        if (!variants.length) {
          article.append(el('p', {class: 'muted', text: 'Not sold in this region.'}));
          container.append(article);
          continue;
        }
        const priceLabel = el('p', {class: 'price'});
        const stockLabel = el('span', {class: 'stock'});
        const select = el('select', {'aria-label': `${product.title} variant`},
          ...variants.map((variant) => el('option', {value: variant.id, text: variant.title})));
        const quantity = el('input', {type: 'number', min: '1', max: '999', value: '1', 'aria-label': `${product.title} quantity`});
        const button = el('button', {type: 'button', class: 'add', text: 'Add to cart', 'aria-label': `Add ${product.title} to cart`});
        const update = () => {
          const variant = variants.find((v) => v.id === select.value);
          priceLabel.textContent = formatMoney(variant.price.amount, variant.price.currency_code);
          stockLabel.textContent = variant.in_stock ? 'In stock' : 'Out of stock';
          stockLabel.classList.toggle('out', !variant.in_stock);
          button.disabled = !variant.in_stock;
        };
        select.addEventListener('change', update);
        button.addEventListener('click', () => act(async () => {
          const qty = parseInt(quantity.value, 10);
          if (!Number.isInteger(qty) || qty < 1) throw new ShopperError('Please enter a quantity of at least 1.');
          await addToCart(select.value, qty);
          showMessage(`Added ${product.title} to your cart.`, 'info');
        }));
        update();
        if (variants.length === 1) select.hidden = true;
        article.append(el('div', {class: 'buy'}, priceLabel, stockLabel), el('div', {class: 'buy'}, select, quantity, button));
        container.append(article);
      }
    }

    /** The product's picture, when it has one on this site (a page loads nothing from another host). */
    function thumbnail(product) {
      if (!product.thumbnail) return null;
      let url;
      try {
        url = new URL(product.thumbnail, location.href);
      } catch (ignored) {
        return null;
      }
      if (url.origin !== location.origin) return null;
      return el('img', {class: 'thumbnail', src: url.pathname + url.search, alt: product.title, width: '240', height: '160', loading: 'lazy'});
    }

    async function changeRegion(regionId) {
      state.region = regionById(regionId);
      localStorage.setItem(REGION_KEY, regionId);
      if (state.cart && state.cart.region_id !== regionId) {
        const {cart} = await api('POST', `/store/carts/${encodeURIComponent(state.cart.id)}`, {region_id: regionId});
        state.shippingOptions = null;
        setCart(cart);
      }
      await loadProducts();
      renderCheckout();
    }

    // Cart

    async function addToCart(variantId, quantity) {
      if (!state.cart) {
        const {cart} = await api('POST', '/store/carts', {region_id: state.region.id, items: [{variant_id: variantId, quantity}]});
        setCart(cart);
        return;
      }
      const {cart} = await api('POST', `/store/carts/${encodeURIComponent(state.cart.id)}/line-items`, {variant_id: variantId, quantity});
      setCart(cart);
    }

    async function setQuantity(itemId, quantity) {
      const path = `/store/carts/${encodeURIComponent(state.cart.id)}/line-items/${encodeURIComponent(itemId)}`;
      const {cart} = quantity === 0 ? await api('DELETE', path) : await api('POST', path, {quantity});
      setCart(cart);
    }

    function renderCart() {
      const cart = state.cart;
      const items = cart ? cart.items : [];
      $('#cart-empty').hidden = items.length > 0;
      const table = $('#cart-lines');
      table.hidden = !items.length;
      const body = $('tbody', table);
      body.replaceChildren();
      for (const item of items) {
        const qty = el('input', {type: 'number', min: '0', max: '999', value: String(item.quantity), 'aria-label': `Quantity of ${item.title}`});
        qty.addEventListener('change', () => act(async () => {
          const value = parseInt(qty.value, 10);
          if (!Number.isInteger(value) || value < 0) throw new ShopperError('Please enter a quantity of 0 or more.');
          await setQuantity(item.id, value);
        }));
        const remove = el('button', {type: 'button', class: 'link', text: 'Remove', 'aria-label': `Remove ${item.title}`});
        remove.addEventListener('click', () => act(() => setQuantity(item.id, 0)));
        body.append(el('tr', {'data-sku': item.sku},
          el('td', {}, el('span', {text: item.title}), el('br'),
            el('small', {class: 'muted', text: `${formatMoney(item.unit_price, cart.currency_code)} each`})),
          el('td', {}, qty),
          el('td', {class: 'num', text: formatMoney(item.subtotal, cart.currency_code)}),
          el('td', {}, remove)));
      }
      if (items.length) renderTotals($('#cart-totals'), cart, state.region && state.region.tax_inclusive);
      else $('#cart-totals').hidden = true;
      renderCheckout();
    }

    // Checkout steps

    function fillAddressForm() {
      const form = $('#address-form');
      const countries = form.elements['shipping_address.country_code'];
      const allowed = state.region ? state.region.countries : [];
      if (countries.dataset.region !== (state.region && state.region.id)) {
        countries.replaceChildren(...countryOptions(allowed));
        countries.dataset.region = state.region ? state.region.id : '';
      }
      const billingCountries = form.elements['billing_address.country_code'];
      if (!billingCountries.options.length) {
        billingCountries.replaceChildren(...countryOptions(CONFIG.country_codes || []));
        if (allowed.length) billingCountries.value = allowed[0];
      }
      const cart = state.cart;
      if (!cart || form.dataset.filledFor === cart.id) return;
      form.dataset.filledFor = cart.id;
      if (cart.email) form.elements.email.value = cart.email;
      else if (state.customer && !form.elements.email.value) form.elements.email.value = state.customer.email;
      for (const [prefix, address] of [['shipping_address', cart.shipping_address], ['billing_address', cart.billing_address]]) {
        if (!address) continue;
        for (const [key, value] of Object.entries(address)) {
          const input = form.elements[`${prefix}.${key}`];
          if (input && value) input.value = value;
        }
      }
    }

    function renderCheckout() {
      const cart = state.cart;
      const hasItems = Boolean(cart && cart.items.length);
      $('#checkout').hidden = !hasItems;
      if (!hasItems) return;
      fillAddressForm();
      const addressDone = Boolean(cart.email && cart.shipping_address);
      $('#shipping-step').hidden = !addressDone;
      if (addressDone) renderShippingOptions();
      const payable = addressDone && Boolean(cart.shipping_method);
      $('#payment-step').hidden = !payable;
      if (payable) {
        mountCard();
        renderCardChoices();
      }
      $('#pay-button').textContent = `Pay ${formatMoney(cart.total, cart.currency_code)}`;
    }

    function readAddress(form, prefix) {
      const address = {};
      for (const input of form.querySelectorAll(`[name^="${prefix}."]`)) {
        const value = input.value.trim();
        if (value) address[input.name.slice(prefix.length + 1)] = value;
      }
      return address;
    }

    function markInvalid(param) {
      for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
      if (!param) return;
      const input = $('#address-form').elements[param];
      if (input && input.setAttribute) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      }
    }

    async function saveAddress(event) {
      event.preventDefault();
      await act(async () => {
        const form = $('#address-form');
        const shipping = readAddress(form, 'shipping_address');
        const billing = $('#billing-same').checked ? shipping : readAddress(form, 'billing_address');
        const email = form.elements.email.value.trim();
        if (!email) {
          markInvalid('email');
          throw new ShopperError('Please enter your email address.');
        }
        try {
          const {cart} = await api('POST', `/store/carts/${encodeURIComponent(state.cart.id)}`, {
            email, shipping_address: shipping, billing_address: billing,
          });
          markInvalid(null);
          state.shippingOptions = null;
          setCart(cart);
        } catch (err) {
          if (err instanceof ApiError) markInvalid(err.param);
          throw err;
        }
      });
    }

    async function renderShippingOptions() {
      const container = $('#shipping-options');
      if (state.shippingOptions === null) {
        state.shippingOptions = [];  // one request at a time
        try {
          const data = await api('GET', `/store/shipping-options?cart_id=${encodeURIComponent(state.cart.id)}`);
          state.shippingOptions = data.shipping_options;
        } catch (err) {
          state.shippingOptions = null;
          showMessage(describeError(err, state));
          return;
        }
      }
      const chosen = state.cart.shipping_method && state.cart.shipping_method.option_id;
      container.replaceChildren();
      if (!state.shippingOptions.length) {
        container.append(el('p', {class: 'muted', text: 'No shipping options for this region.'}));
        return;
      }
      for (const option of state.shippingOptions) {
        const radio = el('input', {type: 'radio', name: 'shipping-option', value: option.id, checked: option.id === chosen});
        radio.addEventListener('change', () => act(async () => {
          const {cart} = await api('POST', `/store/carts/${encodeURIComponent(state.cart.id)}/shipping-methods`, {option_id: option.id});
          setCart(cart);
        }));
        container.append(el('label', {class: 'option'}, radio,
          el('span', {text: ` ${option.name} — ${formatMoney(option.amount, state.cart.currency_code)}`})));
      }
    }

    function savedCardLabel(method) {
      const brand = method.brand ? method.brand.charAt(0).toUpperCase() + method.brand.slice(1) : 'Card';
      const expiry = method.exp_month && method.exp_year ? `, expires ${String(method.exp_month).padStart(2, '0')}/${method.exp_year}` : '';
      return `${brand} •••• ${method.last4}${expiry}`;
    }

    /** A signed-in shopper: their saved cards to pay with, and "Save this card" for a new one. */
    async function renderCardChoices() {
      $('#save-card-label').hidden = !state.customer;
      if (!state.customer) return;
      if (state.savedCards === null) {
        state.savedCards = [];  // one request at a time
        try {
          state.savedCards = (await api('GET', '/store/customers/me/payment-methods')).payment_methods;
        } catch (ignored) {
          state.savedCards = [];  // paying with a new card still works
        }
        const options = $('#saved-card-options');
        options.replaceChildren(...state.savedCards.map((method, index) => el('label', {class: 'option'},
          el('input', {type: 'radio', name: 'card-choice', value: method.id, checked: index === 0}),
          el('span', {text: ' ' + savedCardLabel(method)}))));
        $('#card-choice-new').checked = !state.savedCards.length;
        $('#saved-cards').hidden = !state.savedCards.length;
      }
      const chosen = chosenSavedCard();
      $('#new-card').hidden = Boolean(chosen);
    }

    /** The id of the saved card the shopper picked, or null for a new card. */
    function chosenSavedCard() {
      const radio = document.querySelector('input[name=card-choice]:checked');
      return radio && radio.value !== 'new' ? radio.value : null;
    }

    function mountCard() {
      if (card) return;
      if (typeof window.Stripe !== 'function') {
        $('#card-element').textContent = 'Card payments are unavailable right now (Stripe.js did not load).';
        return;
      }
      stripe = window.Stripe(CONFIG.stripe_publishable_key);
      card = stripe.elements().create('card', {hidePostalCode: true});
      card.mount('#card-element');
      $('#pay-button').disabled = state.busy;
    }

    /** Finish what Stripe.js must do in the browser (3-D Secure, or the card itself) for this session. */
    async function confirmInBrowser(session, data) {
      const result = data
        ? await stripe.confirmCardPayment(session.data.client_secret, data)
        : await stripe.confirmCardPayment(session.data.client_secret);
      if (result.error) {
        throw new ShopperError((result.error.message || 'We could not authenticate your card.') + ' Please try again or use another card.');
      }
      const status = result.paymentIntent && result.paymentIntent.status;
      if (status !== 'requires_capture' && status !== 'succeeded') {
        throw new ShopperError('Your bank did not confirm the payment. Please try again or use another card.');
      }
    }

    async function createSession(cartId, body) {
      const {payment_session: session} = await api('POST', `/store/carts/${encodeURIComponent(cartId)}/payment-sessions`, {
        provider_id: 'stripe', ...body,
      });
      return session;
    }

    /** Pay with a saved card: the server sets it on the PaymentIntent and confirms it. */
    async function authorizeSavedCard(cartId, paymentMethodId) {
      showMessage('Confirming your payment…', 'info');
      return settle(await createSession(cartId, {payment_method_id: paymentMethodId}));
    }

    /** A session the server confirmed: authorized, or 3-D Secure to finish in the browser. */
    async function settle(session) {
      if (session.status === 'requires_action') {
        showMessage('Your bank asks you to confirm this payment.', 'info');
        await confirmInBrowser(session);
      } else if (!AUTHORIZED.includes(session.status)) {
        throw new ShopperError('The payment was not approved. Please try again or use another card.');
      }
      return session;
    }

    /** A new card to keep: Stripe.js confirms the session's PaymentIntent with it (the API then saves it). */
    async function authorizeAndSaveCard(cartId) {
      showMessage('Confirming your payment…', 'info');
      const session = await createSession(cartId, {save_payment_method: true});
      if (!AUTHORIZED.includes(session.status)) await confirmInBrowser(session, {payment_method: {card}});
      return session;
    }

    /** Tokenize the card, let the server attach it and confirm; finish 3-D Secure in the browser. */
    async function authorize(cartId) {
      const savedCard = state.customer ? chosenSavedCard() : null;
      if (savedCard) return authorizeSavedCard(cartId, savedCard);
      if (state.customer && $('#save-card').checked) return authorizeAndSaveCard(cartId);
      const {token, error} = await stripe.createToken(card);
      if (error || !token) {
        throw new ShopperError((error && error.message) || 'Please check your card number, expiry date and CVC.');
      }
      showMessage('Confirming your payment…', 'info');
      return settle(await createSession(cartId, {card_token: token.id}));
    }

    async function pay() {
      await act(async () => {
        const cartId = state.cart.id;
        // An earlier attempt may have been authorized already (e.g. the connection dropped
        // before the order was placed): complete it instead of asking the card again.
        const {cart} = await api('GET', `/store/carts/${encodeURIComponent(cartId)}`);
        setCart(cart);
        const existing = cart.payment_session;
        const session = existing && AUTHORIZED.includes(existing.status) && existing.amount === cart.total
          ? existing
          : await authorize(cartId);
        showMessage('Placing your order…', 'info');
        const {order} = await api('POST', `/store/carts/${encodeURIComponent(cartId)}/complete`, {
          payment_intent_id: session.data.payment_intent_id,
        });
        localStorage.removeItem(CART_KEY);
        location.assign(`/orders/${encodeURIComponent(order.id)}`);
        await new Promise(() => {});  // keep the page busy until it navigates
      });
    }

    async function init() {
      $('#address-form').addEventListener('submit', saveAddress);
      $('#billing-same').addEventListener('change', (event) => {
        $('#billing-fields').hidden = event.target.checked;
      });
      $('#region-select').addEventListener('change', (event) => act(() => changeRegion(event.target.value)));
      $('#pay-button').addEventListener('click', pay);
      $('#payment-step').addEventListener('change', (event) => {
        if (event.target.name === 'card-choice') $('#new-card').hidden = Boolean(chosenSavedCard());
      });
      if (!CONFIG.checkout_enabled) showMessage('Checkout is paused for a moment. You can still fill your cart.', 'info');
      await act(async () => {
        state.customer = await currentCustomer();
        await Promise.all([loadRegions(), loadCategories()]);
        const savedCart = localStorage.getItem(CART_KEY);
        if (savedCart) {
          try {
            const {cart} = await api('GET', `/store/carts/${encodeURIComponent(savedCart)}`);
            if (cart.status === 'active') setCart(cart);
            else localStorage.removeItem(CART_KEY);
          } catch (err) {
            localStorage.removeItem(CART_KEY);
          }
        }
        await loadProducts();
        renderCart();
      });
      document.body.dataset.ready = 'true';
    }

    init();
  }

  // --- Order confirmation page -------------------------------------------------------

  const PAYMENT_WORDS = {
    not_paid: 'Not paid',
    requires_action: 'Waiting for card authentication',
    authorized: 'Authorized — your card will be charged when we ship',
    partially_captured: 'Partially charged',
    captured: 'Paid (captured)',
    partially_refunded: 'Partially refunded',
    refunded: 'Refunded',
    canceled: 'Canceled — your card was not charged',
  };
  const ORDER_WORDS = {pending: 'Received', completed: 'Completed', canceled: 'Canceled', archived: 'Archived'};
  const FULFILLMENT_WORDS = {
    not_fulfilled: 'Being prepared', fulfilled: 'Packed', shipped: 'Shipped', delivered: 'Delivered', canceled: 'Canceled',
  };

  const PAYMENT_SHORT_WORDS = {
    not_paid: 'Not paid', requires_action: 'Awaiting authentication', authorized: 'Authorized',
    partially_captured: 'Partly paid', captured: 'Paid', partially_refunded: 'Partly refunded', refunded: 'Refunded',
    canceled: 'Canceled',
  };

  /** A carrier's tracking page, when the shop recorded one (only web links). */
  function trackingLink(url) {
    try {
      const parsed = new URL(url);
      return ['https:', 'http:'].includes(parsed.protocol) ? parsed.href : null;
    } catch (ignored) {
      return null;
    }
  }

  function startOrderPage() {
    const orderId = CONFIG.order_id;
    const fromAccount = CONFIG.order_view === 'account';

    function status(node, value, words) {
      node.textContent = words[value] || value;
      node.dataset.status = value;
    }

    function renderShipments(order) {
      const list = $('#order-shipments');
      list.replaceChildren(...(order.shipments || []).map((shipment) => {
        const link = shipment.tracking_url && trackingLink(shipment.tracking_url);
        const number = link
          ? el('a', {href: link, rel: 'noopener noreferrer', target: '_blank', class: 'tracking-number', text: shipment.tracking_number})
          : el('span', {class: 'tracking-number', text: shipment.tracking_number});
        const when = shipment.delivered_at
          ? ` · shipped ${formatDate(shipment.shipped_at)}, delivered ${formatDate(shipment.delivered_at)}`
          : ` · shipped ${formatDate(shipment.shipped_at)}`;
        return el('li', {class: 'shipment'},
          el('span', {class: 'carrier', text: shipment.carrier}), ' tracking number ', number, when);
      }));
      $('#order-shipments-section').hidden = !list.children.length;
    }

    function renderRefunds(order) {
      const list = $('#order-refunds');
      list.replaceChildren(...(order.refunds || []).map((refund) => el('li', {class: 'refund', dataset: {status: refund.status}},
        el('span', {class: 'refund-amount', text: formatMoney(refund.amount, order.currency_code)}),
        refund.status === 'pending'
          ? ` refund in progress since ${formatDate(refund.created_at)}`
          : ` refunded on ${formatDate(refund.created_at)}`)));
      $('#order-refunds-section').hidden = !list.children.length;
    }

    async function load() {
      clearMessage();
      try {
        const {order} = await api('GET', `/store/orders/${encodeURIComponent(orderId)}`);
        if (fromAccount) {
          $('#order-title').textContent = `Order #${order.display_id}`;
          $('#order-lead').textContent = `Placed on ${formatDate(order.created_at)} · updates go to ${order.email}.`;
        } else {
          $('#order-display-id').textContent = `#${order.display_id}`;
          $('#order-email').textContent = order.email;
        }
        $('#order-date').textContent = formatDate(order.created_at);
        status($('#order-status'), order.status, ORDER_WORDS);
        status($('#order-payment-status'), order.payment_status, PAYMENT_WORDS);
        status($('#order-fulfillment-status'), order.fulfillment_status, FULFILLMENT_WORDS);
        const lines = $('#order-lines');
        lines.replaceChildren(...order.items.map((item) => el('tr', {'data-sku': item.sku},
          el('td', {text: item.title}),
          el('td', {text: String(item.quantity)}),
          el('td', {class: 'num', text: formatMoney(item.unit_price, order.currency_code)}),
          el('td', {class: 'num', text: formatMoney(item.subtotal, order.currency_code)}))));
        const taxInclusive = order.tax_inclusive !== undefined ? order.tax_inclusive : false;
        renderTotals($('#order-totals'), order, taxInclusive);
        const method = order.shipping_method ? [order.shipping_method.name] : [];
        $('#order-address').textContent = [...addressLines(order.shipping_address), ...method].join('\n') || 'No shipping needed';
        $('#order-billing-address').textContent = addressLines(order.billing_address || order.shipping_address).join('\n');
        renderShipments(order);
        renderRefunds(order);
        $('#order-details').hidden = false;
        $('#order').dataset.paymentStatus = order.payment_status;
      } catch (err) {
        showMessage(err instanceof ApiError && err.status === 404
          ? (fromAccount
            ? 'We could not find this order in your account. Are you signed in as the shopper who placed it?'
            : 'We could not find this order. Please check the link in your confirmation email.')
          : describeError(err));
      } finally {
        $('#order-loading').hidden = true;
        $('#order').setAttribute('aria-busy', 'false');
        document.body.dataset.ready = 'true';
      }
    }

    $('#order-account-link').hidden = !fromAccount;
    $('#order-refresh').addEventListener('click', load);
    currentCustomer().then(() => {
      if (fromAccount && !authToken()) {
        location.replace(signInPath());
        return;
      }
      load();
    });
  }

  // --- Sign in, register ---------------------------------------------------------------

  /** Run a form's submit: busy state, errors in words next to the field the API names. */
  function formAction(form, action) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (document.body.dataset.busy === 'true') return;
      clearMessage();
      for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
      document.body.dataset.busy = 'true';
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        await action();
      } catch (err) {
        const input = err instanceof ApiError && err.param && form.elements[err.param];
        if (input && input.setAttribute) {
          input.setAttribute('aria-invalid', 'true');
          input.focus();
        }
        showMessage(describeError(err));
      } finally {
        button.disabled = false;
        document.body.dataset.busy = 'false';
      }
    });
  }

  function readForm(form, names) {
    const values = {};
    for (const name of names) {
      const input = form.elements[name];
      values[name] = input.type === 'password' ? input.value : input.value.trim();
    }
    return values;
  }

  async function signIn(email, password) {
    const {token} = await api('POST', '/store/auth/token', {email, password}, {anonymous: true});
    setAuthToken(token);
    localStorage.removeItem(CART_KEY);  // the previous shopper's cart, if any, is not theirs
  }

  function startSignIn() {
    const form = $('#sign-in-form');
    const next = nextPath('/account');
    $('#register-link').href = '/account/register?next=' + encodeURIComponent(next);
    formAction(form, async () => {
      const {email, password} = readForm(form, ['email', 'password']);
      if (!email || !password) throw new ShopperError('Please enter your email and password.');
      await signIn(email, password);
      location.assign(next);
      await new Promise(() => {});  // stay busy until the next page loads
    });
    startPage();
  }

  function startRegister() {
    const form = $('#register-form');
    const next = nextPath('/account');
    $('#sign-in-link').href = '/account/sign-in?next=' + encodeURIComponent(next);
    formAction(form, async () => {
      const values = readForm(form, ['email', 'password', 'first_name', 'last_name']);
      if (!values.email || !values.password) throw new ShopperError('Please enter your email and a password.');
      await api('POST', '/store/customers', values, {anonymous: true});
      await signIn(values.email, values.password);
      location.assign(next);
      await new Promise(() => {});
    });
    startPage();
  }

  /** A page with nothing to load but the header. */
  function startPage() {
    currentCustomer().then(() => {
      document.body.dataset.ready = 'true';
    });
  }

  // --- Account page ----------------------------------------------------------------------

  function startAccount() {
    let nextOrders = null;

    function renderOrders(orders, append) {
      const body = $('#orders tbody');
      if (!append) body.replaceChildren();
      body.append(...orders.map((order) => {
        const href = `/account/orders/${encodeURIComponent(order.id)}`;
        return el('tr', {dataset: {order: order.id}},
          el('td', {}, el('a', {href, text: `#${order.display_id}`, 'aria-label': `Order #${order.display_id}`})),
          el('td', {text: formatDate(order.created_at)}),
          el('td', {dataset: {status: order.fulfillment_status}},
            `${FULFILLMENT_WORDS[order.fulfillment_status] || order.fulfillment_status} · ${PAYMENT_SHORT_WORDS[order.payment_status] || order.payment_status}`),
          el('td', {class: 'num', text: formatMoney(order.total, order.currency_code)}));
      }));
      $('#orders').hidden = !body.children.length;
      $('#orders-empty').hidden = Boolean(body.children.length);
    }

    async function loadOrders(url, append) {
      const data = await api('GET', url);
      nextOrders = data.next ? new URL(data.next, location.href) : null;
      renderOrders(data.orders, append);
      $('#orders-more').hidden = !nextOrders;
    }

    function renderCards(methods) {
      const list = $('#cards');
      list.replaceChildren(...methods.map((method) => {
        const brand = method.brand ? method.brand.charAt(0).toUpperCase() + method.brand.slice(1) : 'Card';
        const label = `${brand} •••• ${method.last4}`;
        const remove = el('button', {type: 'button', class: 'link', text: 'Remove', 'aria-label': `Remove ${label}`});
        remove.addEventListener('click', () => removeCard(method, label, remove));
        return el('li', {class: 'saved-card', dataset: {paymentMethod: method.id}},
          el('span', {class: 'card-brand', text: label}),
          el('span', {class: 'muted', text: ` expires ${String(method.exp_month).padStart(2, '0')}/${method.exp_year} `}),
          remove);
      }));
      list.hidden = !methods.length;
      $('#cards-empty').hidden = Boolean(methods.length);
    }

    async function loadCards() {
      try {
        renderCards((await api('GET', '/store/customers/me/payment-methods')).payment_methods);
      } catch (err) {
        $('#cards-empty').hidden = false;
        $('#cards-empty').textContent = 'Your saved cards cannot be shown right now. Please try again later.';
      }
    }

    async function removeCard(method, label, button) {
      clearMessage();
      button.disabled = true;
      document.body.dataset.busy = 'true';
      try {
        await api('DELETE', `/store/customers/me/payment-methods/${encodeURIComponent(method.id)}`);
        await loadCards();
        showMessage(`${label} was removed.`, 'info');
      } catch (err) {
        button.disabled = false;
        showMessage(describeError(err));
      } finally {
        document.body.dataset.busy = 'false';
      }
    }

    async function init() {
      const customer = await currentCustomer();
      if (!customer) {
        location.replace(signInPath());
        return;
      }
      try {
        $('#profile-email').textContent = customer.email;
        $('#profile-name').textContent = `${customer.first_name || ''} ${customer.last_name || ''}`.trim() || '—';
        $('#profile-joined').textContent = formatDate(customer.date_joined);
        await Promise.all([loadOrders('/store/customers/me/orders?limit=20', false), loadCards()]);
        $('#account').hidden = false;
      } catch (err) {
        showMessage(describeError(err));
      } finally {
        $('#account-loading').hidden = true;
        document.body.dataset.ready = 'true';
      }
    }

    $('#orders-more').addEventListener('click', async () => {
      if (!nextOrders) return;
      try {
        await loadOrders(nextOrders.pathname + nextOrders.search, true);
      } catch (err) {
        showMessage(describeError(err));
      }
    });
    init();
  }

  window.Storefront = {
    startCheckout, startOrderPage, startSignIn, startRegister, startAccount, startHeader, signOut,
    formatMoney, describeError, ApiError, countryName,
  };
})();
