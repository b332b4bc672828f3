"""A screenshot of the search page with the results of one query, in headless Chromium.

  python tools/search_page_screenshot.py --index INDEX --query QUERY.jpg \
      --output docs/search_page.png [--topk 16]

Serves INDEX on a free loopback port (as `python -m dahjax.serve` does), opens the page,
uploads QUERY as a person would, waits for every thumbnail, saves the screenshot and
prints the results shown. Needs Chromium and ChromeDriver (Debian: chromium,
chromium-driver) and the test extra's selenium.
"""

import argparse
import os
import shutil
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--index', required=True)
  parser.add_argument('--query', required=True)
  parser.add_argument('--output', required=True)
  parser.add_argument('--topk', type=int, default=16)
  args = parser.parse_args()

  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  import waitress

  from dahjax import search
  from dahjax import serve

  index = search.load_index(args.index)
  web = serve.create_app(index)
  web.batcher.warm_up()
  server = waitress.create_server(web, host='127.0.0.1', port=0, threads=4)
  threading.Thread(target=server.run, daemon=True).start()
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which('chromium')
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1200,900'):
    options.add_argument(arg)
  driver = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=options)
  try:
    wait = WebDriverWait(driver, 60)
    driver.get(f'http://127.0.0.1:{server.effective_port}/')
    wait.until(lambda d: 'images' in d.find_element(By.ID, 'about').text)
    topk = driver.find_element(By.ID, 'topk')
    topk.clear()
    topk.send_keys(str(args.topk))
    driver.find_element(By.ID, 'file').send_keys(os.path.abspath(args.query))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '.result img')) == args.topk)
    wait.until(
      lambda d: all(
        d.execute_script('return arguments[0].complete && arguments[0].naturalWidth > 0', i)
        for i in d.find_elements(By.CSS_SELECTOR, '.result img')
      )
    )
    driver.save_screenshot(args.output)
    print(driver.find_element(By.ID, 'status').text)
    for f in driver.find_elements(By.CSS_SELECTOR, '.result'):
      print(f.get_attribute('data-distance'), f.get_attribute('data-path'))
  finally:
    driver.quit()
    server.close()


if __name__ == '__main__':
  main()
