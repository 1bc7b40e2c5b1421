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
 */
(function () {
  'use strict';

  const CONFIG = JSON.parse(document.getElementById('storefront-config').textContent);
  const CART_KEY = 'storefront.cart_id';
  const REGION_KEY = 'storefront.region_id';
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
  async function api(method, path, body) {
    const headers = {Accept: 'application/json'};
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
    const state = {regions: [], region: null, products: [], cart: null, shippingOptions: null, busy: false};
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

    async function loadProducts() {
      const container = $('#products');
      container.setAttribute('aria-busy', 'true');
      let url = `/store/products?region_id=${encodeURIComponent(state.region.id)}&limit=100`;
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
        countries.replaceChildren(...allowed.map((code) => el('option', {value: code, text: code})));
        countries.dataset.region = state.region ? state.region.id : '';
      }
      const cart = state.cart;
      if (!cart || form.dataset.filledFor === cart.id) return;
      form.dataset.filledFor = cart.id;
      if (cart.email) form.elements.email.value = cart.email;
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
      if (payable) mountCard();
      $('#pay-button').textContent = `Pay ${formatMoney(cart.total, cart.currency_code)}`;
    }

    function readAddress(form, prefix) {
      const address = {};
      for (const input of form.querySelectorAll(`[name^="${prefix}."]`)) {
        const value = input.value.trim();
        if (value) address[input.name.slice(prefix.length + 1)] = prefix === 'billing_address' && input.name.endsWith('country_code') ? value.toUpperCase() : value;
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

    /** Tokenize the card, let the server attach it and confirm; finish 3-D Secure in the browser. */
    async function authorize(cartId) {
      const {token, error} = await stripe.createToken(card);
      if (error || !token) {
        throw new ShopperError((error && error.message) || 'Please check your card number, expiry date and CVC.');
      }
      showMessage('Confirming your payment…', 'info');
      const {payment_session: session} = await api('POST', `/store/carts/${encodeURIComponent(cartId)}/payment-sessions`, {
        provider_id: 'stripe', card_token: token.id,
      });
      if (session.status === 'requires_action') {
        showMessage('Your bank asks you to confirm this payment.', 'info');
        const result = await stripe.confirmCardPayment(session.data.client_secret);
        if (result.error) {
          throw new ShopperError((result.error.message || 'We could not authenticate your card.') + ' Please try again or use another card.');
        }
        const status = result.paymentIntent && result.paymentIntent.status;
        if (status !== 'requires_capture' && status !== 'succeeded') {
          throw new ShopperError('Your bank did not confirm the payment. Please try again or use another card.');
        }
      } else if (!AUTHORIZED.includes(session.status)) {
        throw new ShopperError('The payment was not approved. Please try again or use another card.');
      }
      return session;
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
      if (!CONFIG.checkout_enabled) showMessage('Checkout is paused for a moment. You can still fill your cart.', 'info');
      await act(async () => {
        await loadRegions();
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

  function startOrderPage() {
    const orderId = CONFIG.order_id;

    function status(node, value, words) {
      node.textContent = words[value] || value;
      node.dataset.status = value;
    }

    async function load() {
      clearMessage();
      try {
        const {order} = await api('GET', `/store/orders/${encodeURIComponent(orderId)}`);
        $('#order-display-id').textContent = `#${order.display_id}`;
        $('#order-email').textContent = order.email;
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
        const address = order.shipping_address || {};
        const method = order.shipping_method ? `\n${order.shipping_method.name}` : '';
        $('#order-address').textContent = [
          `${address.first_name || ''} ${address.last_name || ''}`.trim(),
          address.address_1, address.address_2, `${address.postal_code || ''} ${address.city || ''}`.trim(),
          address.country_code,
        ].filter(Boolean).join('\n') + method;
        $('#order-details').hidden = false;
        $('#order').dataset.paymentStatus = order.payment_status;
      } catch (err) {
        showMessage(err instanceof ApiError && err.status === 404
          ? 'We could not find this order. Please check the link in your confirmation email.'
          : describeError(err));
      } finally {
        $('#order-loading').hidden = true;
        $('#order').setAttribute('aria-busy', 'false');
        document.body.dataset.ready = 'true';
      }
    }

    $('#order-refresh').addEventListener('click', load);
    load();
  }

  window.Storefront = {startCheckout, startOrderPage, formatMoney, describeError, ApiError};
})();
