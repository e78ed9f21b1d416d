// Customer-page strings in English and Spanish, and the few functions that apply them.
//
// Every text the customer reads goes through t(): a scam victim under pressure should get the
// warning in their own language. The language comes from navigator.languages and can be
// switched on the page; nothing is stored (no cookies, no localStorage).
//
// Format rule, relied on by tests/unit/test_i18n.py: one quoted key per line, four spaces in.

const STRINGS = {
  en: {
    "app.title": "Remote support",
    "lang.label": "Language",
    "org.caption": "Remote support provided by",
    "org.check": "The address bar of your browser must show {host}.",
    "warning.title": "Before you continue",
    "warning.body": "Only continue if you are on the phone with us and you called us, or you were expecting this call. We will never ask you for passwords or payments.",
    "warning.hangup": "If anything feels wrong, hang up and call us back on a number you already know.",
    "join.title": "Start a remote support session",
    "join.intro": "Enter the session code the engineer read to you on the phone.",
    "join.code_label": "Session code",
    "join.code_hint": "10 digits, for example 123 456 7890",
    "join.submit": "Continue",
    "join.busy": "Checking the code…",
    "join.err_format": "A session code has 10 digits. Please check it and try again.",
    "join.err_rejected": "This code cannot be used: it was already used, it has expired, or it was mistyped. Ask the engineer for a new code.",
    "join.err_rate": "Too many attempts from this connection. Please wait a few minutes and try again.",
    "join.err_network": "The support service could not be reached. Check your connection and try again.",
    "join.err_other": "Something went wrong: {detail} Please try again.",
    "session.title": "Your support session",
    "session.case": "Case number",
    "session.case_check": "Check that this is the case number you were given on the phone.",
    "session.engineer": "Engineer",
    "session.engineer_value": "{name}, {level}",
    "level.l1": "support desk (level 1)",
    "level.l2": "remote support engineer (level 2)",
    "level.l3": "design engineering (level 3)",
    "level.none": "support staff",
    "ask.title": "What the engineer will ask",
    "ask.view": "First, {name} will ask to see your screen. Your computer shows the question, and you can say yes or no.",
    "ask.control": "Later, they may ask to control your mouse and keyboard. You will be asked again, and you can take control back at any time.",
    "agent.title": "Start the support program",
    "agent.install": "If the support program is not installed on the computer that needs help, install it with:",
    "agent.run": "Then run this command in a terminal on that computer. It already contains the key for this session:",
    "agent.secret": "Do not give this command to anyone else: it lets a program join this session.",
    "agent.copy": "Copy command",
    "agent.copied": "Copied.",
    "agent.copy_failed": "Copying did not work: select the command and copy it by hand.",
    "status.title": "Session status",
    "status.connecting": "Connecting to the support service…",
    "status.waiting": "Waiting for the support program to start on your computer.",
    "status.pending_no_engineer": "The support program is connected. Waiting for the engineer to join.",
    "status.pending": "Waiting for your consent. Connected: {names}. Nobody can see your screen until you say yes in the support program window.",
    "status.observing": "Your screen is being viewed by {names}.",
    "status.controlling": "Your computer is being controlled by {name}.",
    "status.also_viewing": "Also viewing: {names}.",
    "status.paused": "Sharing is paused. Nobody can see or control your computer.",
    "status.ended": "The session has ended. Nobody can see or control your computer.",
    "status.reconnecting": "Connection lost. Reconnecting…",
    "status.refused": "The support service closed this page's connection: {detail} If you need to go on, ask the engineer for a new code.",
    "status.nobody": "nobody",
    "status.person": "{name} ({level})",
    "status.engineer_fallback": "an engineer",
    "asking.view": "{name} asks to see your screen.",
    "asking.control": "{name} asks to control your mouse and keyboard.",
    "asking.reason": "Reason given: {reason}",
    "asking.no_reason": "No reason given.",
    "asking.where": "Answer yes or no in the support program window.",
    "readback.title": "Read-back words",
    "readback.intro": "The engineer will read some words to you (or the number below them). They must be exactly these words. If they are different, end the session.",
    "readback.none": "The words appear when the support program and the engineer are both connected.",
    "readback.unavailable": "This page cannot show the words yet. Compare them with the words in the support program window instead.",
    "readback.digits": "Number: {digits}",
    "controls.title": "You stay in control",
    "controls.help": "Each button takes effect at once. The support program window has the same choices.",
    "controls.pause": "Pause sharing",
    "controls.resume": "Resume",
    "controls.revoke_control": "Revoke control",
    "controls.stop_viewing": "Stop viewing",
    "controls.end": "End session",
    "controls.not_connected": "This page is not connected right now: use the support program window, or wait a moment.",
    "chat.title": "Chat with the engineers",
    "chat.intro": "Messages are encrypted between this page, the support program on your computer and the engineers. The support service passes them on but cannot read them.",
    "chat.label": "Your message",
    "chat.send": "Send",
    "chat.you": "You",
    "chat.wait_agent": "Chat starts when the support program is running.",
    "chat.wait_view": "Chat starts when you let an engineer see your screen.",
    "chat.paused": "Chat is paused while sharing is paused.",
    "chat.unavailable": "This browser cannot encrypt the chat. Use the phone, or the support program window, to talk to the engineer.",
    "chat.too_long": "That message is too long. Please split it.",
    "chat.not_sent": "The message was not sent: the connection is down. Try again in a moment.",
    "feedback.title": "Is your problem solved?",
    "feedback.solved": "My problem is solved",
    "feedback.not_solved": "Still not solved",
    "feedback.comment_label": "Anything to add? (optional)",
    "feedback.comment_hint": "The engineers read this with your answer. Do not write passwords.",
    "feedback.thanks_solved": "Thank you. Case {case} is now marked as resolved.",
    "feedback.thanks_not_solved": "Thank you. Case {case} stays open, and an engineer will contact you.",
    "feedback.error": "Your answer could not be saved: {detail}",
    "check.title": "Check my case",
    "check.intro": "See the status of your case with its number and your product's serial number. No login is needed.",
    "check.case_label": "Case number",
    "check.serial_label": "Product serial number",
    "check.submit": "Check status",
    "check.not_found": "No case matches that case number and serial number.",
    "check.err_rate": "Too many attempts from this connection. Please wait a few minutes and try again.",
    "check.err_other": "The status could not be checked: {detail}",
    "check.result": "Case {case}, {product}: {status}",
    "check.updated": "Last updated: {when}",
    "check.sessions": "Support sessions",
    "check.no_sessions": "No support sessions yet.",
    "check.col_started": "Started",
    "check.col_engineer": "Engineer",
    "check.col_state": "State",
    "check.col_ended": "Ended",
    "check.no_engineer": "nobody at the moment",
    "case_status.open": "open",
    "case_status.in_progress": "in progress",
    "case_status.awaiting_customer": "waiting for your answer",
    "case_status.resolved": "resolved",
    "case_status.closed": "closed",
    "session_state.waiting": "waiting",
    "session_state.active": "active",
    "session_state.ended": "ended",
    "device.title": "This looks like a phone or a tablet",
    "device.intro": "The support program runs on the computer that needs help, not on this device. Your session code has not been used yet. Choose how to go on:",
    "device.computer_title": "Open this on your computer",
    "device.computer_open": "On the computer that needs help, open this address in the browser:",
    "device.computer_type": "Then type this session code there:",
    "device.computer_unspent": "Nothing has been used on this phone: the code still works on the computer.",
    "device.phone_title": "Use this phone for the chat and the status",
    "device.phone_intro": "This phone follows the session, with the chat and the buttons to pause or end it. It then shows a second code that starts the support program on your computer.",
    "device.phone_button": "Use this phone and hand the computer part over",
    "device.override": "This device is a computer: continue here",
    "device.back": "Back",
    "handoff.title": "Start the support program on your computer",
    "handoff.intro": "This phone shows the status and the chat. On the computer that needs help, open this address and type the code below. The code works once.",
    "handoff.qr": "The same link as a QR code:",
    "handoff.qr_alt": "QR code of the link for your computer",
    "handoff.expires": "The code works until {time}.",
    "handoff.expired": "The code has expired. Ask for a new one.",
    "handoff.done": "The support program is connected on your computer.",
    "handoff.new": "Show a new code",
    "handoff.error": "No new code could be made: {detail}",
    "part.agent_note": "Your phone shows the session status, the chat and the buttons to pause or end the session. On this computer, start the support program below.",
    "notice.title": "An engineer is waiting for your answer",
    "notice.where": "Answer yes or no in the support program window on your computer.",
    "notice.ok": "I have seen it",
    "resume.refused": "Your earlier session on this page could not be resumed: {detail} Ask the engineer for a new code.",
    "error.bad_request": "The request was not understood.",
    "error.validation_failed": "Some of what was sent is not valid. Check it and try again.",
    "error.payload_too_large": "What was sent is too large.",
    "error.request_timeout": "The request took too long. Try again.",
    "error.unsupported_version": "This page is out of date. Reload it.",
    "error.unauthorized": "This page's access to the session is no longer valid.",
    "error.invalid_credentials": "Wrong user name or password.",
    "error.invalid_token": "This page's access to the session is not valid: it expired or belongs to another session.",
    "error.access_revoked": "Access to this session was withdrawn.",
    "error.token_expired": "This page's access to the session has expired.",
    "error.forbidden": "This is not allowed.",
    "error.confirm_window_closed": "The time to answer for this session is over.",
    "error.origin_rejected": "This page was not opened from the support service's own address.",
    "error.not_found": "The session or the case was not found.",
    "error.method_not_allowed": "This request is not allowed here.",
    "error.unsupported_media_type": "The request was sent in a form the service does not accept.",
    "error.expectation_failed": "The request could not be handled.",
    "error.conflict": "That is not possible in the session's current state (it may have ended).",
    "error.invalid_transition": "That is not possible in the session's current state.",
    "error.consent_required": "You have not agreed to this.",
    "error.session_ended": "The session has ended.",
    "error.view_only": "The screen is shared from this browser, which can only show it: to let the engineer control your computer, install the support program.",
    "error.code_rejected": "This code cannot be used: it was already used, it has expired, or it was mistyped.",
    "error.agent_outdated": "The support program is too old. Download it again from this page.",
    "error.rate_limited": "Too many attempts. Please wait a few minutes and try again.",
    "error.overloaded": "The support service is busy. Try again in a moment.",
    "error.relay_unavailable": "The support service is not available right now. Try again in a moment.",
    "error.flow_control": "The connection was too slow. It reconnects by itself.",
    "error.internal_error": "The support service had a problem. Try again in a moment.",
    "error.http_error": "The support service answered with an error.",
    "error.unreachable": "The support service could not be reached. Check your connection and try again.",
    "error.other": "Something went wrong ({detail}).",
    "close.normal_closure": "The connection was closed.",
    "close.going_away": "The support service is restarting.",
    "close.protocol_error": "The connection failed (protocol error).",
    "close.unsupported_data": "The connection received data it cannot use.",
    "close.abnormal_closure": "The connection was lost.",
    "close.invalid_payload": "The connection received data that is not valid.",
    "close.policy_violation": "The connection broke a rule of the service.",
    "close.message_too_big": "A message was too large.",
    "close.mandatory_extension": "The connection lacks a feature it needs.",
    "close.internal_error": "The support service had a problem.",
    "close.try_again_later": "The support service is busy. Try again later.",
    "close.auth_failed": "Signing in to the session failed.",
    "close.unsupported_version": "This page is out of date. Reload it.",
    "close.invalid_token": "This page's access to the session is not valid: it expired or belongs to another session.",
    "close.forbidden": "This is not allowed.",
    "close.origin_rejected": "This page was not opened from the support service's own address.",
    "close.access_revoked": "Access to this session was withdrawn.",
    "close.token_expired": "This page's access to the session has expired.",
    "close.rate_limited": "Too many messages were sent too fast.",
    "close.invalid_transition": "That is not possible in the session's current state.",
    "close.consent_required": "You have not agreed to this.",
    "close.code_rejected": "The session code was already used, has expired, or is unknown.",
    "close.session_ended": "The session has ended.",
    "close.replaced": "A newer connection took this page's place.",
    "close.agent_outdated": "The support program is too old. Download it again.",
    "close.relay_unavailable": "The support service is not available right now.",
    "close.flow_control": "The connection was too slow.",
    "close.bad_message": "A message was not understood.",
    "close.not_found": "The session no longer exists.",
    "close.conflict": "That conflicts with the session's current state.",
    "close.validation_failed": "A message was not valid.",
    "close.other": "The connection closed (code {code}).",
  },
  es: {
    "app.title": "Asistencia remota",
    "lang.label": "Idioma",
    "org.caption": "Asistencia remota prestada por",
    "org.check": "La barra de direcciones de su navegador debe mostrar {host}.",
    "warning.title": "Antes de continuar",
    "warning.body": "Continúe solo si está hablando por teléfono con nosotros y nos llamó usted, o si esperaba esta llamada. Nunca le pediremos contraseñas ni pagos.",
    "warning.hangup": "Si algo le parece extraño, cuelgue y llámenos a un número que ya conozca.",
    "join.title": "Iniciar una sesión de asistencia remota",
    "join.intro": "Introduzca el código de sesión que el técnico le leyó por teléfono.",
    "join.code_label": "Código de sesión",
    "join.code_hint": "10 cifras, por ejemplo 123 456 7890",
    "join.submit": "Continuar",
    "join.busy": "Comprobando el código…",
    "join.err_format": "Un código de sesión tiene 10 cifras. Revíselo e inténtelo de nuevo.",
    "join.err_rejected": "Este código no se puede usar: ya se usó, ha caducado o está mal escrito. Pida un código nuevo al técnico.",
    "join.err_rate": "Demasiados intentos desde esta conexión. Espere unos minutos e inténtelo de nuevo.",
    "join.err_network": "No se pudo contactar con el servicio de asistencia. Compruebe su conexión e inténtelo de nuevo.",
    "join.err_other": "Algo ha fallado: {detail} Inténtelo de nuevo.",
    "session.title": "Su sesión de asistencia",
    "session.case": "Número de caso",
    "session.case_check": "Compruebe que es el número de caso que le dieron por teléfono.",
    "session.engineer": "Técnico",
    "session.engineer_value": "{name}, {level}",
    "level.l1": "servicio de atención (nivel 1)",
    "level.l2": "técnico de asistencia remota (nivel 2)",
    "level.l3": "ingeniería de diseño (nivel 3)",
    "level.none": "personal de asistencia",
    "ask.title": "Qué le pedirá el técnico",
    "ask.view": "Primero, {name} le pedirá ver su pantalla. Su ordenador le mostrará la pregunta y usted puede decir que sí o que no.",
    "ask.control": "Después puede pedirle controlar su ratón y su teclado. Se le preguntará de nuevo, y puede recuperar el control en cualquier momento.",
    "agent.title": "Inicie el programa de asistencia",
    "agent.install": "Si el programa de asistencia no está instalado en el ordenador que necesita ayuda, instálelo con:",
    "agent.run": "Después ejecute esta orden en una terminal de ese ordenador. Ya contiene la clave de esta sesión:",
    "agent.secret": "No dé esta orden a nadie más: permite que un programa se una a esta sesión.",
    "agent.copy": "Copiar la orden",
    "agent.copied": "Copiada.",
    "agent.copy_failed": "No se pudo copiar: seleccione la orden y cópiela a mano.",
    "status.title": "Estado de la sesión",
    "status.connecting": "Conectando con el servicio de asistencia…",
    "status.waiting": "Esperando a que el programa de asistencia se inicie en su ordenador.",
    "status.pending_no_engineer": "El programa de asistencia está conectado. Esperando a que se una el técnico.",
    "status.pending": "Esperando su consentimiento. Conectados: {names}. Nadie puede ver su pantalla hasta que usted diga que sí en la ventana del programa de asistencia.",
    "status.observing": "Su pantalla está siendo vista por {names}.",
    "status.controlling": "{name} está controlando su ordenador.",
    "status.also_viewing": "También con acceso a la pantalla: {names}.",
    "status.paused": "La sesión está en pausa. Nadie puede ver ni controlar su ordenador.",
    "status.ended": "La sesión ha terminado. Nadie puede ver ni controlar su ordenador.",
    "status.reconnecting": "Se perdió la conexión. Reconectando…",
    "status.refused": "El servicio de asistencia cerró la conexión de esta página: {detail} Si necesita continuar, pida un código nuevo al técnico.",
    "status.nobody": "nadie",
    "status.person": "{name} ({level})",
    "status.engineer_fallback": "un técnico",
    "asking.view": "{name} le pide ver su pantalla.",
    "asking.control": "{name} le pide controlar su ratón y su teclado.",
    "asking.reason": "Motivo indicado: {reason}",
    "asking.no_reason": "No se ha indicado ningún motivo.",
    "asking.where": "Responda sí o no en la ventana del programa de asistencia.",
    "readback.title": "Palabras de verificación",
    "readback.intro": "El técnico le leerá el número de abajo (o las palabras, que están en inglés). Deben coincidir exactamente. Si no coinciden, termine la sesión.",
    "readback.none": "Las palabras aparecen cuando el programa de asistencia y el técnico están conectados.",
    "readback.unavailable": "Esta página aún no puede mostrar las palabras. Compárelas con las de la ventana del programa de asistencia.",
    "readback.digits": "Número: {digits}",
    "controls.title": "Usted mantiene el control",
    "controls.help": "Cada botón tiene efecto inmediato. La ventana del programa de asistencia ofrece las mismas opciones.",
    "controls.pause": "Pausar",
    "controls.resume": "Reanudar",
    "controls.revoke_control": "Retirar el control",
    "controls.stop_viewing": "Dejar de compartir la pantalla",
    "controls.end": "Terminar la sesión",
    "controls.not_connected": "Esta página no está conectada ahora: use la ventana del programa de asistencia o espere un momento.",
    "chat.title": "Chat con los técnicos",
    "chat.intro": "Los mensajes van cifrados entre esta página, el programa de asistencia de su ordenador y los técnicos. El servicio de asistencia los transmite pero no puede leerlos.",
    "chat.label": "Su mensaje",
    "chat.send": "Enviar",
    "chat.you": "Usted",
    "chat.wait_agent": "El chat empieza cuando el programa de asistencia está en marcha.",
    "chat.wait_view": "El chat empieza cuando permita a un técnico ver su pantalla.",
    "chat.paused": "El chat está en pausa mientras la pantalla compartida está en pausa.",
    "chat.unavailable": "Este navegador no puede cifrar el chat. Hable con el técnico por teléfono o en la ventana del programa de asistencia.",
    "chat.too_long": "Ese mensaje es demasiado largo. Divídalo, por favor.",
    "chat.not_sent": "El mensaje no se envió: no hay conexión. Inténtelo de nuevo en un momento.",
    "feedback.title": "¿Se ha resuelto su problema?",
    "feedback.solved": "Mi problema está resuelto",
    "feedback.not_solved": "Todavía no está resuelto",
    "feedback.comment_label": "¿Quiere añadir algo? (opcional)",
    "feedback.comment_hint": "Los técnicos leerán esto junto con su respuesta. No escriba contraseñas.",
    "feedback.thanks_solved": "Gracias. El caso {case} queda marcado como resuelto.",
    "feedback.thanks_not_solved": "Gracias. El caso {case} sigue abierto y un técnico se pondrá en contacto con usted.",
    "feedback.error": "No se pudo guardar su respuesta: {detail}",
    "check.title": "Consultar mi caso",
    "check.intro": "Consulte el estado de su caso con su número y el número de serie de su producto. No hace falta iniciar sesión.",
    "check.case_label": "Número de caso",
    "check.serial_label": "Número de serie del producto",
    "check.submit": "Consultar estado",
    "check.not_found": "Ningún caso coincide con ese número de caso y ese número de serie.",
    "check.err_rate": "Demasiados intentos desde esta conexión. Espere unos minutos e inténtelo de nuevo.",
    "check.err_other": "No se pudo consultar el estado: {detail}",
    "check.result": "Caso {case}, {product}: {status}",
    "check.updated": "Última actualización: {when}",
    "check.sessions": "Sesiones de asistencia",
    "check.no_sessions": "Todavía no hay sesiones de asistencia.",
    "check.col_started": "Inicio",
    "check.col_engineer": "Técnico",
    "check.col_state": "Estado",
    "check.col_ended": "Fin",
    "check.no_engineer": "nadie en este momento",
    "case_status.open": "abierto",
    "case_status.in_progress": "en curso",
    "case_status.awaiting_customer": "esperando su respuesta",
    "case_status.resolved": "resuelto",
    "case_status.closed": "cerrado",
    "session_state.waiting": "en espera",
    "session_state.active": "activa",
    "session_state.ended": "terminada",
    "device.title": "Parece un teléfono o una tableta",
    "device.intro": "El programa de asistencia funciona en el ordenador que necesita ayuda, no en este dispositivo. Su código de sesión aún no se ha usado. Elija cómo continuar:",
    "device.computer_title": "Ábralo en su ordenador",
    "device.computer_open": "En el ordenador que necesita ayuda, abra esta dirección en el navegador:",
    "device.computer_type": "Después escriba allí este código de sesión:",
    "device.computer_unspent": "En este teléfono no se ha usado nada: el código sigue funcionando en el ordenador.",
    "device.phone_title": "Use este teléfono para el chat y el estado",
    "device.phone_intro": "Este teléfono sigue la sesión, con el chat y los botones para pausarla o terminarla. Después muestra un segundo código que inicia el programa de asistencia en su ordenador.",
    "device.phone_button": "Usar este teléfono y pasar la parte del ordenador",
    "device.override": "Este dispositivo es un ordenador: continuar aquí",
    "device.back": "Volver",
    "handoff.title": "Inicie el programa de asistencia en su ordenador",
    "handoff.intro": "Este teléfono muestra el estado y el chat. En el ordenador que necesita ayuda, abra esta dirección y escriba el código de abajo. El código sirve una sola vez.",
    "handoff.qr": "El mismo enlace como código QR:",
    "handoff.qr_alt": "Código QR del enlace para su ordenador",
    "handoff.expires": "El código sirve hasta las {time}.",
    "handoff.expired": "El código ha caducado. Pida uno nuevo.",
    "handoff.done": "El programa de asistencia está conectado en su ordenador.",
    "handoff.new": "Mostrar un código nuevo",
    "handoff.error": "No se pudo crear un código nuevo: {detail}",
    "part.agent_note": "Su teléfono muestra el estado de la sesión, el chat y los botones para pausarla o terminarla. En este ordenador, inicie el programa de asistencia a continuación.",
    "notice.title": "Un técnico espera su respuesta",
    "notice.where": "Responda sí o no en la ventana del programa de asistencia de su ordenador.",
    "notice.ok": "Entendido",
    "resume.refused": "No se pudo reanudar su sesión anterior en esta página: {detail} Pida un código nuevo al técnico.",
    "error.bad_request": "No se entendió la solicitud.",
    "error.validation_failed": "Parte de lo enviado no es válido. Revíselo e inténtelo de nuevo.",
    "error.payload_too_large": "Lo enviado es demasiado grande.",
    "error.request_timeout": "La solicitud tardó demasiado. Inténtelo de nuevo.",
    "error.unsupported_version": "Esta página está desactualizada. Recárguela.",
    "error.unauthorized": "El acceso de esta página a la sesión ya no es válido.",
    "error.invalid_credentials": "Usuario o contraseña incorrectos.",
    "error.invalid_token": "El acceso de esta página a la sesión no es válido: ha caducado o es de otra sesión.",
    "error.access_revoked": "Se retiró el acceso a esta sesión.",
    "error.token_expired": "El acceso de esta página a la sesión ha caducado.",
    "error.forbidden": "Esto no está permitido.",
    "error.confirm_window_closed": "Ya ha pasado el plazo para responder sobre esta sesión.",
    "error.origin_rejected": "Esta página no se abrió desde la dirección del propio servicio de asistencia.",
    "error.not_found": "No se encontró la sesión o el caso.",
    "error.method_not_allowed": "Esta solicitud no está permitida aquí.",
    "error.unsupported_media_type": "La solicitud se envió en un formato que el servicio no acepta.",
    "error.expectation_failed": "No se pudo atender la solicitud.",
    "error.conflict": "No es posible en el estado actual de la sesión (puede haber terminado).",
    "error.invalid_transition": "No es posible en el estado actual de la sesión.",
    "error.consent_required": "Usted no ha dado su consentimiento para esto.",
    "error.session_ended": "La sesión ha terminado.",
    "error.view_only": "La pantalla se comparte desde este navegador, que solo puede mostrarla: para que el técnico controle su ordenador, instale el programa de asistencia.",
    "error.code_rejected": "Este código no se puede usar: ya se usó, ha caducado o está mal escrito.",
    "error.agent_outdated": "El programa de asistencia está desactualizado. Descárguelo de nuevo desde esta página.",
    "error.rate_limited": "Demasiados intentos. Espere unos minutos e inténtelo de nuevo.",
    "error.overloaded": "El servicio de asistencia está ocupado. Inténtelo de nuevo en un momento.",
    "error.relay_unavailable": "El servicio de asistencia no está disponible ahora. Inténtelo de nuevo en un momento.",
    "error.flow_control": "La conexión era demasiado lenta. Se vuelve a conectar sola.",
    "error.internal_error": "El servicio de asistencia tuvo un problema. Inténtelo de nuevo en un momento.",
    "error.http_error": "El servicio de asistencia respondió con un error.",
    "error.unreachable": "No se pudo contactar con el servicio de asistencia. Compruebe su conexión e inténtelo de nuevo.",
    "error.other": "Algo ha fallado ({detail}).",
    "close.normal_closure": "Se cerró la conexión.",
    "close.going_away": "El servicio de asistencia se está reiniciando.",
    "close.protocol_error": "La conexión falló (error de protocolo).",
    "close.unsupported_data": "La conexión recibió datos que no puede usar.",
    "close.abnormal_closure": "Se perdió la conexión.",
    "close.invalid_payload": "La conexión recibió datos no válidos.",
    "close.policy_violation": "La conexión incumplió una norma del servicio.",
    "close.message_too_big": "Un mensaje era demasiado grande.",
    "close.mandatory_extension": "A la conexión le falta una función que necesita.",
    "close.internal_error": "El servicio de asistencia tuvo un problema.",
    "close.try_again_later": "El servicio de asistencia está ocupado. Inténtelo más tarde.",
    "close.auth_failed": "Falló el acceso a la sesión.",
    "close.unsupported_version": "Esta página está desactualizada. Recárguela.",
    "close.invalid_token": "El acceso de esta página a la sesión no es válido: ha caducado o es de otra sesión.",
    "close.forbidden": "Esto no está permitido.",
    "close.origin_rejected": "Esta página no se abrió desde la dirección del propio servicio de asistencia.",
    "close.access_revoked": "Se retiró el acceso a esta sesión.",
    "close.token_expired": "El acceso de esta página a la sesión ha caducado.",
    "close.rate_limited": "Se enviaron demasiados mensajes demasiado rápido.",
    "close.invalid_transition": "No es posible en el estado actual de la sesión.",
    "close.consent_required": "Usted no ha dado su consentimiento para esto.",
    "close.code_rejected": "El código de sesión ya se usó, ha caducado o no existe.",
    "close.session_ended": "La sesión ha terminado.",
    "close.replaced": "Una conexión más reciente ocupó el lugar de esta página.",
    "close.agent_outdated": "El programa de asistencia está desactualizado. Descárguelo de nuevo.",
    "close.relay_unavailable": "El servicio de asistencia no está disponible ahora.",
    "close.flow_control": "La conexión era demasiado lenta.",
    "close.bad_message": "No se entendió un mensaje.",
    "close.not_found": "La sesión ya no existe.",
    "close.conflict": "Eso entra en conflicto con el estado actual de la sesión.",
    "close.validation_failed": "Un mensaje no era válido.",
    "close.other": "La conexión se cerró (código {code}).",
  },
};

export const LANGUAGES = Object.freeze(Object.keys(STRINGS));

let current = "en";
const listeners = [];

/** The first supported language among the browser's preferences, English otherwise. */
export function detectLanguage(preferred) {
  for (const tag of preferred || []) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(primary)) {
      return primary;
    }
  }
  return "en";
}

export function getLanguage() {
  return current;
}

/** Whether `key` has an English text (every key has one; Spanish is checked by the tests). */
export function has(key) {
  return Object.hasOwn(STRINGS.en, key);
}

/** The text for `key` in the current language, with {name} placeholders filled from params. */
export function t(key, params = {}) {
  const table = STRINGS[current];
  const template = Object.hasOwn(table, key) ? table[key] : STRINGS.en[key];
  if (template === undefined) {
    return key;
  }
  return template.replace(/\{([a-z_]+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/** Fill every element carrying data-i18n (text), -placeholder, -aria-label or -alt under `root`. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-alt]")) {
    el.alt = t(el.dataset.i18nAlt);
  }
  document.documentElement.lang = current;
  document.title = t("app.title");
}

/** Switch language, re-translate the static text and tell listeners to redraw the rest. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) {
    return;
  }
  current = lang;
  translatePage();
  for (const listener of listeners) {
    listener(lang);
  }
}

export function onLanguageChange(listener) {
  listeners.push(listener);
}

/** "A, B and C" in the current language. */
export function joinList(items) {
  return new Intl.ListFormat(current, { style: "long", type: "conjunction" }).format(items);
}

/** A date and time in the current language and the browser's time zone. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return String(iso);
  }
  return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

/** A time of day (hours and minutes; `when` an ISO string or milliseconds) in the current
 * language and the browser's time zone. */
export function formatClock(when) {
  const date = new Date(when);
  if (Number.isNaN(date.getTime())) {
    return String(when);
  }
  return new Intl.DateTimeFormat(current, { timeStyle: "short" }).format(date);
}
