//! auth-host's own pages for people: the development login form and the login error page.
//! They load nothing and run no script (the content security policy forbids both), so the
//! style is inlined from `page.css`.

use super::response::escape_html;

const STYLE: &str = include_str!("page.css");

/// A whole page: `title` is text, `body` is HTML the caller has escaped.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{} · auth-host</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        escape_html(title)
    )
}

/// The development login: anyone may log in as anyone, so the page says so.
pub fn dev_login_form(state: &str) -> String {
    page(
        "Development login",
        &format!(
            "<h1>Development login</h1>\
             <p>Log in as any email address. This login is for trying auth-host on this \
             machine only.</p>\
             <p class=note role=note>Development login is switched on \
             (<code>AUTH_DEV_LOGIN</code>): never on a server others can reach.</p>\
             <form method=post action=\"/auth/login/dev\">\
             <input type=hidden name=state value=\"{}\">\
             <label for=email>Email</label>\
             <input id=email name=email type=email autocomplete=email required autofocus>\
             <label for=name>Name <span class=hint>(optional)</span></label>\
             <input id=name name=name autocomplete=name>\
             <button type=submit>Log in</button></form>",
            escape_html(state)
        ),
    )
}

/// A login that ended with no safe place to send the browser back to.
pub fn login_failed(message: &str) -> String {
    page(
        "Login failed",
        &format!(
            "<h1>Login failed</h1><p class=error role=alert>{}</p>\
             <p>Go back to the application you came from to log in.</p>",
            escape_html(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The colour variables of one `:root { … }` block of the style.
    fn palette(block: &str) -> std::collections::HashMap<String, [f64; 3]> {
        block
            .split(';')
            .filter_map(|item| {
                let (name, value) = item.trim().split_once(':')?;
                let hex = value.trim().strip_prefix('#')?;
                let channel = |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
                Some((name.trim().to_owned(), [channel(0), channel(2), channel(4)]))
            })
            .collect()
    }

    /// WCAG 2 contrast ratio of two sRGB colours.
    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let luminance = |rgb: [f64; 3]| {
            let linear = |c: f64| {
                let c = c / 255.0;
                if c <= 0.039_28 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
        };
        let (l1, l2) = (luminance(a), luminance(b));
        (l1.max(l2) + 0.05) / (l1.min(l2) + 0.05)
    }

    #[test]
    fn text_colours_keep_a_contrast_of_at_least_4_5_in_light_and_dark() {
        let blocks: Vec<&str> = STYLE
            .split(":root {")
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 2, "a light and a dark palette");
        let pairs = [
            ("--text", "--bg"),
            ("--text", "--card"),
            ("--muted", "--card"),
            ("--on-accent", "--accent"),
            ("--accent", "--card"),
            ("--danger", "--danger-bg"),
            ("--note", "--note-bg"),
        ];
        for block in blocks {
            let colours = palette(block);
            for (fore, back) in pairs {
                let ratio = contrast(colours[fore], colours[back]);
                assert!(ratio >= 4.5, "{fore} on {back}: {ratio:.2}");
            }
        }
    }

    #[test]
    fn pages_escape_what_they_show_and_label_every_field() {
        let form = dev_login_form("\"><script>");
        assert!(form.contains("value=\"&quot;&gt;&lt;script&gt;\""));
        for field in ["email", "name"] {
            assert!(form.contains(&format!("<label for={field}>")));
            assert!(form.contains(&format!("id={field} ")));
        }
        assert!(form.contains("<html lang=en>"));
        let error = login_failed("<b>no</b>");
        assert!(error.contains("&lt;b&gt;no&lt;/b&gt;") && !error.contains("<b>"));
    }
}
