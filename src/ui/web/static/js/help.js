// "How to use this page" cards: shown on a first visit, hidden once dismissed (localStorage).

const PREFIX = 'scp.help.';

function dismissed(key) {
  try {
    return localStorage.getItem(PREFIX + key) === 'dismissed';
  } catch {
    return false;
  }
}

function remember(key, value) {
  try {
    if (value) localStorage.setItem(PREFIX + key, value);
    else localStorage.removeItem(PREFIX + key);
  } catch {
    // storage may be disabled: the card simply shows again next time
  }
}

export function initHelp() {
  for (const card of document.querySelectorAll('[data-help]')) {
    const key = card.dataset.help;
    card.hidden = dismissed(key);
    card.querySelector('[data-help-dismiss]').addEventListener('click', () => {
      card.hidden = true;
      remember(key, 'dismissed');
      const opener = document.querySelector(`[data-help-show="${key}"]`);
      if (opener) opener.focus();
    });
  }
  for (const button of document.querySelectorAll('[data-help-show]')) {
    button.addEventListener('click', () => {
      const card = document.querySelector(`[data-help="${button.dataset.helpShow}"]`);
      if (!card) return;
      card.hidden = false;
      remember(button.dataset.helpShow, null);
      card.querySelector('[data-help-dismiss]').focus();
    });
  }
}
